"""People and access: password hashing, the secrets of sessions and API tokens, and the
rule that slows and then locks repeated failed logins. No I/O here: the store keeps the
accounts, the web edge asks."""
