"""People who log in to the console: accounts, passwords (argon2id), sessions, CSRF and lockout."""
