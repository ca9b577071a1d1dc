"""`make perf`'s regression gate: the pytest-benchmark flags the Makefile passes fail a planted 2× slowdown
against the saved run, and pass an unchanged rerun (the mechanism, on a sleep of known length)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = """
import os, time
def test_speed(benchmark):
    benchmark.pedantic(time.sleep, args=(float(os.environ["DELAY_S"]),), rounds=5, iterations=1)
"""


def _makefile_compare_flags() -> list[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    m = re.search(r"PERF_COMPARE := \$\(if [^,]+,(--benchmark-compare [^,)]+),\)", text)
    assert m, "Makefile: PERF_COMPARE no longer compares against the saved run"
    return m.group(1).split()


def _run(tmp: Path, delay: float, *flags: str) -> int:
    env = {**os.environ, "DELAY_S": str(delay)}
    cmd = [sys.executable, "-m", "pytest", str(tmp / "test_speed.py"), "-q", "-p", "no:cacheprovider",
           "--benchmark-autosave", f"--benchmark-storage={tmp / 'store'}", *flags]  # fmt: skip
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, check=False).returncode


@pytest.mark.slow  # timing-dependent (sleeps measured against a 50 % gate)
def test_make_perf_fails_on_a_planted_2x_slowdown(tmp_path: Path) -> None:
    (tmp_path / "test_speed.py").write_text(BENCH, encoding="utf-8")
    flags = _makefile_compare_flags()
    assert "--benchmark-compare-fail=mean:50%" in flags
    assert _run(tmp_path, 0.02) == 0  # the saved run
    assert _run(tmp_path, 0.02, *flags) == 0  # unchanged: passes against it
    assert _run(tmp_path, 0.04, *flags) != 0  # planted 2× slowdown: fails
