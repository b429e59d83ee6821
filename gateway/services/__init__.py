"""gRPC servicers: thin adapters between the contract and the store and brain."""
