"""The reference receiver core banking can read and test against; it keeps its own ledger."""
