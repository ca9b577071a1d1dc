"""The one exception type the CLI prints as a line (re-exported by :mod:`bench.config`, where callers import
it from): its own module so that the config checks can raise it without importing the loader."""

from __future__ import annotations


class BenchError(Exception):
    """An error the user can act on; the CLI prints it as one line, without a traceback."""


class BackendError(BenchError):
    """One request failed at the generator's backend (an HTTP status after the retries, a broken or malformed
    stream, a prompt longer than the context window, a batch answered short). The runner records an error row
    for that question and goes on (bench.eval.answer_loop.QUESTION_ERRORS); every other BenchError is the
    user's to fix and stops the run with one line."""
