"""The gateway's sessions: conversations kept server-side, on SQLite or PostgreSQL."""
