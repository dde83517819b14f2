"""The built-in offline realtime model (``provider = "local"``).

Nothing is imported here: a gateway that serves only remote providers never loads the model's
hearing, speech, numpy or WebRTC stacks (rtproxy/server/gateway.py imports them only when a
``local`` model is configured). Import the submodules: ``rtproxy.offline.model``, ``.server``, …
"""
