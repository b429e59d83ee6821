"""The ``mtsg`` command: one module per command group, their shared helpers in ``support``."""
