"""The data path: a session core that relays frames between two WebSocket legs, the legs and
their byte transport, and dialing the upstream. It knows no protocol: what a frame means, and
which frames the collector needs, comes from the session plan's protocol
(:mod:`rtproxy.protocols`)."""
