"""``make install`` from a fresh clone, timed (``python -m bench.perf install`` → results/perf/install.json).

Each run clones this checkout's commit into a new directory and runs ``make install`` there (a new ``.venv``:
uv from PyPI, then the locked packages; torch from the machine's local CPU wheel), with the package caches
as they are ("warm") or with empty ones ("cold": ``UV_CACHE_DIR`` and ``PIP_CACHE_DIR`` pointed at new
directories, so every package is downloaded again; the OS's file cache stays as it is). The record keeps the
commit, each run's seconds and exit status, and the machine record.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config import REPO_ROOT
from bench.core.machine import MachineProbe
from bench.eval.runstate import git_state

log = logging.getLogger(__name__)

CACHES = {
    "warm": "uv and pip caches as this machine has them (packages downloaded before)",
    "cold": "empty uv and pip caches (new UV_CACHE_DIR, PIP_CACHE_DIR): every package fetched again",
}
NOTE = (
    "python -m bench.perf install: git clone of the commit into a new directory, then make install there "
    "(a new .venv; EXTRAS empty, so neither llama.cpp nor vLLM's virtualenv, which make bench installs "
    "alongside its first stages)."
)


def timed_install(commit: str, cache: str, timeout_s: float = 1800.0) -> dict[str, Any]:
    """One fresh clone of ``commit`` and its ``make install`` with ``cache`` ("warm" or "cold")."""
    if cache not in CACHES:
        raise ValueError(f"cache {cache!r}: use one of {', '.join(CACHES)}")
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True, timeout=300)
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True, timeout=60)
        env = dict(os.environ)
        if cache == "cold":
            env.update(UV_CACHE_DIR=str(Path(tmp) / "uv-cache"), PIP_CACHE_DIR=str(Path(tmp) / "pip-cache"))
        log.info("make install in %s (%s caches)", clone, cache)
        t0 = time.monotonic()
        done = subprocess.run(["make", "install"], cwd=clone, env=env, timeout=timeout_s, check=False)
        seconds = time.monotonic() - t0
    return {
        "cache": CACHES[cache],
        "command": "make install",
        "seconds": round(seconds, 1),
        "rc": done.returncode,
        "commit": commit,
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def measure(caches: tuple[str, ...] = ("warm", "cold")) -> dict[str, Any]:
    """Every run of ``caches``, in order, from the checkout's commit (refused with uncommitted changes)."""
    state = git_state()
    if not state.get("git_commit") or state.get("git_dirty"):
        raise RuntimeError("install timing: commit first (it clones the commit, not the working tree)")
    with MachineProbe() as probe:
        runs = [timed_install(str(state["git_commit"]), c) for c in caches]
    failed = [r for r in runs if r["rc"] != 0]
    if failed:
        raise RuntimeError(f"make install failed ({failed}): nothing written")
    return {"runs": runs, "note": NOTE, "machine": probe.record()}
