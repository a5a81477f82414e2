"""PostgreSQL for the harness: where it comes from, a private server per run, and Coder's pubsub on it."""
