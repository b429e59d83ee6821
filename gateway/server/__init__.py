"""Running the gateway: start-up and shutdown, the interceptor and its guards, gRPC options, workers."""
