"""Ordered parallel map over worker processes that can stop early without hanging.

``multiprocessing.Pool`` deadlocks when a consumer stops reading while tasks are in flight: leaving the
``with Pool`` block terminates workers that may hold the result queue's lock, and the pool's task-handler
thread then waits for that lock forever (issue 32: ``bench ingest --limit N --workers 2``). A worker killed
by the OOM killer also leaves its ``AsyncResult`` unresolved forever.

:func:`ordered_map` runs on :class:`concurrent.futures.ProcessPoolExecutor` instead:

- stopping early (the generator is closed, or the consumer raises) cancels every job not yet started and
  waits for the running ones to *finish* (at most ``inflight`` jobs): no worker is terminated mid-write;
- a worker that dies raises ``BrokenProcessPool`` at once (reported as a :class:`BenchError`);
- every result has a deadline (``timeout_s``): a hung worker is killed and the error names the job.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from bench.errors import BenchError

log = logging.getLogger(__name__)

R = TypeVar("R")
JOB_TIMEOUT_S = 600.0  # one job (a batch of 64 pages, one bz2 stream of ~100) takes seconds


class WorkerTimeout(BenchError):
    """A job gave no result within its deadline (its workers are killed)."""


def _result(fut: Future[R], timeout_s: float, what: str) -> R:
    try:
        return fut.result(timeout=timeout_s)
    except FutureTimeout:
        raise WorkerTimeout(
            f"{what}: a worker gave no result within {timeout_s:g} s (workers killed)"
        ) from None
    except BrokenProcessPool as exc:
        raise _died(what, exc) from exc


def _died(what: str, exc: BrokenProcessPool) -> BenchError:
    return BenchError(f"{what}: a worker process died (killed, or out of memory?): {exc}")


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    procs = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        if proc.is_alive():
            proc.kill()


def ordered_map(
    fn: Callable[..., R],
    jobs: Iterable[tuple[Any, ...]],
    workers: int,
    *,
    inflight: int | None = None,
    timeout_s: float = JOB_TIMEOUT_S,
    what: str = "worker pool",
    drain_on: tuple[type[BaseException], ...] = (),
) -> Iterator[R]:
    """``fn(*job)`` for every job, in job order, in ``workers`` spawned processes, at most ``inflight``
    (default 2×workers) submitted at once.

    ``drain_on``: exceptions raised *while producing jobs* after which the results already submitted are
    still yielded before the exception propagates (a truncated dump keeps the pages read before the damage).
    """
    inflight = inflight or 2 * workers
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    pending: collections.deque[Future[R]] = collections.deque()
    source = iter(jobs)
    try:
        while True:
            try:
                job = next(source)
            except StopIteration:
                break
            except drain_on:
                while pending:
                    yield _result(pending.popleft(), timeout_s, what)
                raise
            try:
                pending.append(pool.submit(fn, *job))
            except BrokenProcessPool as exc:  # a worker died before this job could be queued
                raise _died(what, exc) from exc
            if len(pending) >= inflight:
                yield _result(pending.popleft(), timeout_s, what)
        while pending:
            yield _result(pending.popleft(), timeout_s, what)
    except WorkerTimeout:
        _kill_workers(pool)
        raise
    finally:
        close = getattr(source, "close", None)
        if close is not None:  # the job generator's files and threads are released now, not at GC
            close()
        _shutdown(pool, pending, timeout_s)


def _shutdown(pool: ProcessPoolExecutor, pending: collections.deque[Future[Any]], t: float) -> None:
    """Cancel what has not started; let running jobs finish (never terminate a worker mid-write); kill the
    workers only when a job is past its deadline."""
    for fut in pending:
        fut.cancel()
    running = [f for f in pending if not f.cancelled()]
    if running:
        _done, late = wait(running, timeout=t)
        if late:
            log.warning(
                "worker pool: %d job(s) still running after %.0f s: killing the workers", len(late), t
            )
            _kill_workers(pool)
    pool.shutdown(wait=True, cancel_futures=True)
