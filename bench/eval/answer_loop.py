"""Answering one batch of questions for one variant: records reach the run's cache as they complete.

Split from :mod:`bench.eval.runner` (which owns the run; this owns what counts as one question's failure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bench.config import BenchError
from bench.errors import BackendError
from bench.eval.runstate import question_hash
from bench.eval.variants import VariantSpec, record_of

log = logging.getLogger(__name__)

__all__ = ["QUESTION_ERRORS", "RunStopped", "answer_into", "is_question_error"]


#: What one question may fail with without it being a bug, so that the run records an error row (retried on
#: the next run) and goes on: the backends' own errors (BackendError: an HTTP error after the openai
#: backend's retries, a prompt over llama.cpp's n_ctx, a malformed stream; any other BenchError is a user
#: error, which stops the run with one line), I/O, connection errors and
#: timeouts (OSError: ConnectionError, TimeoutError), the engines' runtime failures (RuntimeError: torch's
#: out-of-memory and NaN/inf sampling, llama.cpp decode errors) and MemoryError. Anything else (TypeError,
#: KeyError, ValueError, ... and NotImplementedError/RecursionError, RuntimeErrors that are bugs) propagates.
QUESTION_ERRORS: tuple[type[Exception], ...] = (BackendError, OSError, RuntimeError, MemoryError)


class RunStopped(BenchError):
    """The run stops on purpose (``run.max_consecutive_errors``): never taken for one question's failure."""


def is_question_error(exc: Exception) -> bool:
    """Whether ``exc`` is an expected per-question failure (:data:`QUESTION_ERRORS`) rather than a bug."""
    return isinstance(exc, QUESTION_ERRORS) and not isinstance(exc, (NotImplementedError, RecursionError))


def answer_into(
    variant: Any,
    spec: VariantSpec,
    key: str,
    batch: list[dict[str, Any]],
    sink: Callable[[dict[str, Any]], None],
) -> None:
    """Cache records for a batch, each handed to ``sink`` once; a generator that reports answers as they
    complete (vllm: a variant's whole list is one batch) has each stored at once, so an interrupted batch
    keeps what it answered. A failing batch is retried one question at a time (those not yet stored), so one
    bad question fails alone (it is retried on the next run)."""
    done: set[int] = set()

    def store(i: int, result: Any) -> None:
        done.add(i)
        sink(record_of(key, batch[i]["id"], question_hash(spec, batch[i]), result))

    if len(batch) > 1:
        try:
            results = variant.answer_batch(batch, on_result=store)
            for i, r in enumerate(results):
                if i not in done:
                    store(i, r)
            return
        except Exception as exc:
            if not is_question_error(exc) or isinstance(exc, RunStopped):
                raise
            log.warning("%s: batch of %d failed (%s: %s); answering the %d left one by one",
                        spec.name, len(batch), type(exc).__name__, exc, len(batch) - len(done))  # fmt: skip
    for i, q in enumerate(batch):
        if i in done:
            continue
        try:
            result, error = variant.answer(q), None
        except Exception as exc:  # one bad question must not sink the run; it is retried on rerun
            if not is_question_error(exc):
                raise
            log.warning("%s/%s failed: %s: %s", spec.name, q["id"], type(exc).__name__, exc)
            result, error = None, f"{type(exc).__name__}: {exc}"
        done.add(i)
        sink(record_of(key, q["id"], question_hash(spec, q), result, error))
