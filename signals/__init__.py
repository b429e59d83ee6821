"""Functional core of mtsg: detectors and policy.

Pure by rule: no I/O, no clock, no globals.  Everything a detector needs (the time,
the customer's history, catalogues of known apps) arrives as plain data, so a
login can be evaluated in microseconds and tested without a server.
"""
