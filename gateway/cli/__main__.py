"""``python -m gateway.cli`` runs the ``mtsg`` command."""

import sys

from gateway.cli.main import main

sys.exit(main())
