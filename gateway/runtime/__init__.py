"""Plumbing every room shares: periodic loops, in-process wake-ups, background CPU work, child processes."""
