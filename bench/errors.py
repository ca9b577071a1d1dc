"""The one exception type the CLI prints as a line (re-exported by :mod:`bench.config`, where callers import
it from): its own module so that the config checks can raise it without importing the loader."""

from __future__ import annotations


class BenchError(Exception):
    """An error the user can act on; the CLI prints it as one line, without a traceback."""
