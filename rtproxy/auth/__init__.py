"""Who may open what: virtual keys, ephemeral ``ek_`` tokens, and admission (a handshake
request in, an admission or a rejection out). Pure functions and values, no I/O."""
