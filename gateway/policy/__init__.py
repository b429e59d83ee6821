"""Scenario policy's shell: applying documents, refreshing every replica, recorded cases, shipped knowledge."""
