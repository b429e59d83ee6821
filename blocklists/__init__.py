"""Functional core of the malicious-app registry: entries, matching, feed formats.

Pure: no network, no database, no clock. The gateway feeds it plain data.
"""
