"""Run a module as ``python -m`` would, in a process that ends when the bench that started it dies.

``python -P -m gateway.bench.tether PARENT_PID MODULE|SCRIPT.py [ARGS...]``: the servers the bench starts
(echo, ``mtsg serve``, ``mtsg core-receiver``) are ordinary programs with no idea who started
them.  Before, a bench killed outright (a timeout's SIGKILL) left them serving in
``/tmp/mtsg-bench-*`` until someone found them.  Tied here, they get SIGTERM and stop as they
would at a clean end of the bench.
"""

from __future__ import annotations

import runpy
import sys

from gateway.runtime.parent_death import end_with_parent


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit():
        sys.exit("usage: python -m gateway.bench.tether PARENT_PID MODULE|SCRIPT.py [ARGS...]")
    end_with_parent(int(argv[0]))
    sys.argv = argv[1:]
    if argv[1].endswith(".py"):  # a script, as scripts/bench_ladder.py serves its levels
        runpy.run_path(argv[1], run_name="__main__")
    else:
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
