"""The process: the gateway's shared state and services, the realtime listener, the main
port's ASGI leg and Quart app, and the command line. The top layer: nothing imports it."""
