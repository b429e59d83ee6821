"""The malicious-app registry's shell: importing entries, syncing signed feeds, refreshing every replica."""
