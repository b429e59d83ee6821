"""Metrics, the metrics HTTP endpoint, structured logging and the build's version."""
