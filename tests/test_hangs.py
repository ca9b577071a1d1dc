"""Nothing hangs (issue 32): the worker pool stops early, reports dead and hung workers; the limited
multi-worker ingest (which deadlocked multiprocessing.Pool inside the full suite) runs 30 times in a loop;
locks have deadlines; a hanging test fails with every thread's stack; a full disk is a clear error that keeps
the previous output."""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.config import BenchError
from bench.core.dist import file_lock
from bench.core.pool import WorkerTimeout, ordered_map
from bench.ingest.corpus import ingest
from bench.ingest.multistream_build import build
from tests import pool_jobs
from tests.conftest import held_in_a_thread, make_dump

REPO = Path(__file__).resolve().parent.parent


def _dump(path: Path, n: int = 400) -> Path:
    rng = random.Random(7)
    pages: list[dict[str, object]] = [
        {
            "title": f"Página {i}",
            "id": i,
            "text": f"'''P{i}''' [[a|b]] {rng.random()}\n== S ==\n" + "ção " * 50,
        }
        for i in range(1, n)
    ]
    path.write_text(make_dump(pages), encoding="utf-8")
    return path


def test_ordered_map_keeps_order_and_stops_early_without_waiting_for_the_rest() -> None:
    jobs = [(i, 0.2) for i in range(40)]
    assert list(ordered_map(pool_jobs.slow_square, jobs[:6], 2)) == [i * i for i in range(6)]
    t0 = time.monotonic()
    it = ordered_map(pool_jobs.slow_square, iter(jobs), 2)
    assert [next(it) for _ in range(3)] == [0, 1, 4]
    it.close()  # what ingest does at `limit`: cancels the queued jobs, lets the running ones finish
    assert time.monotonic() - t0 < 20, "closing waited for all 40 jobs (8 s of work) or hung"


def test_a_killed_worker_is_an_error_not_a_hang() -> None:
    t0 = time.monotonic()
    with pytest.raises(BenchError, match="worker process died"):
        list(ordered_map(pool_jobs.die_at, ((i, 3) for i in range(10)), 2, what="test pool"))
    assert time.monotonic() - t0 < 60


def test_a_hung_worker_fails_at_its_deadline() -> None:
    t0 = time.monotonic()
    with pytest.raises(WorkerTimeout, match="no result within 2 s"):
        list(ordered_map(pool_jobs.hang_at, ((i, 1) for i in range(4)), 2, timeout_s=2, what="test pool"))
    assert time.monotonic() - t0 < 60, "the hung worker was waited for instead of killed"


def test_limited_multi_worker_ingest_in_a_loop(tmp_path: Path) -> None:
    """The deadlock of issue 32: stop at `limit` with batches in flight, 2 workers, 30 times (the
    multiprocessing.Pool version hung at its 11th run of this loop here, ~0.2 s per run before). A hang never
    ends, so the loop's deadline is generous: the whole test took 4 s on a quiet machine and over 60 s
    beside a training job on 2 cores, which is contention, not a deadlock."""
    dump = _dump(tmp_path / "d.xml")
    ms_dump, _index = build(dump, tmp_path / "ms", pages_per_stream=20)
    full = ingest(dump, tmp_path / "full.jsonl")
    lines = (tmp_path / "full.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    deadline, runs = time.monotonic() + 240, 0
    while time.monotonic() < deadline and runs < 30:
        source = ms_dump if runs % 3 == 2 else dump  # the multistream reader's pool too
        limit = 1 + runs * 7 % 150
        stats = ingest(source, tmp_path / "lim.jsonl", workers=2, limit=limit)
        assert stats.articles == limit and stats.limited
        assert (tmp_path / "lim.jsonl").read_text(encoding="utf-8") == "".join(lines[:limit])
        runs += 1
    assert runs == 30, f"only {runs} limited ingests in 240 s"
    assert full.articles == len(lines) == 399
    assert not list(tmp_path.glob(".*.tmp"))


def test_lock_wait_has_a_deadline_naming_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "index-k.lock"
    with held_in_a_thread(file_lock(lock, "the index artifact k"), hold_s=60):
        t0 = time.monotonic()
        match = rf"locked by pid {os.getpid()} for over 0.5 s"
        with pytest.raises(BenchError, match=match), file_lock(lock, "the index artifact k", timeout_s=0.5):
            pass
        assert time.monotonic() - t0 < 10
    with file_lock(lock, "the index artifact k", timeout_s=0.5):  # free again once the holder is done
        pass


def test_a_hanging_test_fails_within_its_limit_with_every_threads_stack(tmp_path: Path) -> None:
    """What a hang in the suite looks like now: a failure in seconds with the stack of every thread."""
    (tmp_path / "test_stuck.py").write_text(
        textwrap.dedent(
            """
            import threading

            def test_deadlock():
                lock = threading.Lock()
                lock.acquire()
                worker = threading.Thread(target=lock.acquire, name="stuck-worker")
                worker.start()
                worker.join()  # never returns
            """
        ),
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_stuck.py")]
    cmd += ["-o", "timeout=6", "-o", "faulthandler_timeout=3", "-o", "timeout_method=signal"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert time.monotonic() - t0 < 90
    assert "Timeout (0:00:03)!" in out and "Failed: Timeout" in out, out[-3000:]
    assert "stuck-worker" in out or out.count("Thread 0x") >= 2, out[-3000:]  # every thread's stack
    assert "in test_deadlock" in out


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_output(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "d.xml", 300)
    out = tmp_path / "articles.jsonl"
    out.write_text("previous\n", encoding="utf-8")

    def small_files() -> None:  # a 64 KiB file-size limit: writing the articles fails like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "ingest", str(dump), "-o", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, preexec_fn=small_files,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: disk full" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert out.read_text(encoding="utf-8") == "previous\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], list(tmp_path.iterdir())
