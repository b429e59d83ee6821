"""Who may call the gateway: TLS credentials, identities and roles, and the guard that checks every call."""
