"""The reference coderd replica: /reinit per variant, a control API, state in PostgreSQL."""
