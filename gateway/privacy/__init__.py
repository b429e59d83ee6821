"""What keeps customers' data from travelling: pseudonyms in logs, keyed phone hashes, retention."""
