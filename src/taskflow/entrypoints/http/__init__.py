"""The HTTP API (docs/api.md, "HTTP API")."""
