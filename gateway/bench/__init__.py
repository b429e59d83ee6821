"""``mtsg bench``: drive a gateway with realistic logins and compare it with a bare gRPC echo server."""
