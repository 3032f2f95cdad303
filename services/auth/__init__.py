"""Auth service: users, API keys, key verification, admin identity."""
