"""What the protocols mean: each realtime API rtproxy speaks, sans-IO.

The relay asks a protocol only what :mod:`rtproxy.protocols.seam` names: which text frames its
collector needs (from their first bytes), a collector per session (events in, records out), and
how to say an error to a client. ``realtime/`` is the OpenAI Realtime API (GA and beta, Azure).
"""
