"""``make bench``'s stages, timed.

``python -m bench.perf.make_bench --profile P --run-dir D [--longform-pages N] [--since T] [--set K=V ...]``
runs ``bench ingest``, ``index``, ``finetune`` and ``run`` (with ``--longform-pages``, then the run's
long-form twin on the same engines) one after another, each in its own process, and writes
``D/make_bench.json``: wall seconds per stage (the installs before them with ``--since``), the total, the
git commit and the machine record (CPU model, cores, load, the CPU other processes took:
:class:`bench.core.machine.MachineProbe`), so the README's timing block names the CPU it was measured on and
says whether the machine was quiet. The default profile's record is also kept per microarchitecture,
``results/perf/make-bench-<cpu>-f<family>m<model>.json``, so that docs/performance.md shows the machine
kinds side by side, each from its own file.

``--report CMD`` (make bench: ``bench report``) is timed as a last stage, ``report``.
``--alongside CMD`` (make bench: the vLLM virtualenv's install) runs CMD in the background from the first
stage on, since only ``run`` needs it: its download and unpacking overlap ingest, index and fine-tuning
instead of adding to them. ``run`` waits for it (``install_wait`` in the record, when it had to); the
record keeps CMD's own wall seconds and its log (``<run dir>/alongside.log``).

A stage that fails stops the pipeline with its exit status; nothing is written then.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core import limits
from bench.core.machine import MachineProbe, TreeCpuSampler
from bench.eval.runstate import git_state
from bench.io import atomic_write_json

STAGES = ("ingest", "index", "finetune", "run")


def stage_command(stage: str, profile: str, sets: list[str], run_dir: Path, longform: int) -> list[str]:
    cmd = [sys.executable, "-m", "bench", stage, "--profile", profile]
    for s in sets:
        cmd += ["--set", s]
    if stage == "run":
        cmd += ["--output", str(run_dir)]
        if longform:
            cmd += ["--longform-pages", str(longform), "--longform-output", f"{run_dir}-longform"]
    return cmd


class Alongside:
    """A shell command run in the background (its output to ``log``), waited for when it is needed."""

    def __init__(self, command: str, log: Path) -> None:
        self.command, self.log = command, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["bash", "-c", command], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wall_s: float | None = None  # set when the command ends, not when someone waits for it
        self._watch = threading.Thread(target=self._finish, name="alongside", daemon=True)
        self._watch.start()

    def _finish(self) -> None:
        self.proc.wait()
        self.wall_s = round(time.monotonic() - self.t0, 1)

    def wait(self) -> tuple[int, float]:
        """(exit status, seconds waited here): the watcher ends with the command."""
        t = time.monotonic()
        self._watch.join()
        return int(self.proc.returncode), round(time.monotonic() - t, 1)

    def stop(self) -> None:
        if self.proc.poll() is None:  # the whole group: make and the pip it started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)


def run_stages(
    profile: str,
    sets: list[str],
    run_dir: Path,
    longform: int,
    since: float | None = None,
    alongside: str = "",
    report: str = "",
) -> dict[str, Any] | int:
    """The stages' wall seconds and the machine record, or the exit status of the stage that failed.
    ``since``: when ``make bench`` started (epoch seconds): the time until now is its installs.
    ``alongside``: a command run in the background from the start, finished before ``run``."""
    stages: dict[str, float] = {}
    if since is not None:
        stages["install"] = round(time.time() - since, 1)
    side = Alongside(alongside, run_dir / "alongside.log") if alongside else None
    try:
        return _timed(profile, sets, run_dir, longform, stages, side, report)
    finally:
        if side is not None:
            side.stop()  # a failed stage does not leave the install running


def _timed(
    profile: str,
    sets: list[str],
    run_dir: Path,
    longform: int,
    stages: dict[str, float],
    side: Alongside | None,
    report: str = "",
) -> dict[str, Any] | int:
    # vLLM's engine core outlives its unreaping server: its CPU is only seen while it runs (TreeCpuSampler)
    with TreeCpuSampler() as tree, MachineProbe(own_cpu=tree.total) as probe:
        t0 = time.monotonic()
        for stage in STAGES + (("report",) if report else ()):
            if stage == "run" and side is not None:
                rc, waited = side.wait()
                if rc != 0:
                    print(f"make bench: `{side.command}` failed (exit {rc}); see {side.log}", file=sys.stderr)
                    return rc
                if waited >= 0.1:
                    stages["install_wait"] = waited
            start = time.monotonic()
            cmd = (
                ["bash", "-c", report]
                if stage == "report"
                else stage_command(stage, profile, sets, run_dir, longform)
            )
            rc = subprocess.call(cmd)
            if rc != 0:
                print(f"make bench: bench {stage} failed (exit {rc})", file=sys.stderr)
                return rc
            stages[stage] = round(time.monotonic() - start, 1)
        total = round(time.monotonic() - t0 + stages.get("install", 0.0), 1)
    return {
        "profile": profile,
        "set": " ".join(sets),
        "stages_s": stages,
        "total_s": total,
        "run": "fact answers, then the long-form twin in the same process (vLLM: on the same engines)"
        if longform
        else "fact answers",
        "longform_pages": longform,
        "cpu_accounting": "own CPU: every process of the tree, read every 0.5 s (vLLM's engine included)",
        **({"alongside": {"command": side.command, "wall_s": side.wall_s}} if side is not None else {}),
        **git_state(),
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": probe.record(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.perf.make_bench", description=__doc__)
    p.add_argument("--profile", default="default")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--longform-pages", type=int, default=0)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--perf-dir", type=Path, default=Path("results/perf"))
    p.add_argument("--since", type=float, default=None, help="epoch seconds make bench started (installs)")
    p.add_argument("--alongside", default="", help="a shell command run in the background, done before run")
    p.add_argument("--report", default="", help="a shell command timed as the last stage (results/REPORT.md)")
    a = p.parse_args(argv)
    doc = run_stages(a.profile, a.sets, a.run_dir, a.longform_pages, a.since, a.alongside, a.report)
    if isinstance(doc, int):
        return doc
    atomic_write_json(a.run_dir / "make_bench.json", doc)
    if a.profile == "default" and not a.sets:
        atomic_write_json(limits.machine_file(a.perf_dir, "make-bench"), doc)
    print(f"make bench: {doc['total_s']:.0f} s (timings in {a.run_dir}/make_bench.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
