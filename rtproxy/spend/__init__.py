"""What a session costs and how it is recorded: prices, record values, the JSON-lines spend log
(writer and reader), queries over it, and per-key budgets. No networking."""
