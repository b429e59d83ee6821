"""Detectors: each a pure function ``(telemetry, context, ...) -> list[Finding]``."""
