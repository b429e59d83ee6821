"""Imperative shell of mtsg: gRPC services, configuration, storage, CLI.

Everything that touches the network, the disk or the clock lives here; the
decisions themselves are made by the pure ``signals`` and ``blocklists`` packages.
"""
