"""Staff accounts of the web workspace: users with argon2 passwords, server-side sessions, login attempts."""
