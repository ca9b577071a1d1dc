"""``make bench``'s stages, timed.

``python -m bench.perf.make_bench --profile P --run-dir D [--longform-pages N] [--since T] [--set K=V ...]``
runs ``bench ingest``, ``index``, ``finetune`` and ``run`` (with ``--longform-pages``, then the run's
long-form twin on the same engines) one after another, each in its own process, and writes
``D/make_bench.json``: wall seconds per stage (the installs before them with ``--since``), the total, the
git commit and the machine record (CPU model, cores, load, the CPU other processes took:
:class:`bench.core.machine.MachineProbe`), so the README's timing block names the CPU it was measured on and
says whether the machine was quiet. The default profile's record is also kept per CPU model,
``results/perf/make-bench-<cpu>.json``, so that docs/performance.md shows the machine kinds side by side,
each from its own file.

A stage that fails stops the pipeline with its exit status; nothing is written then.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core import limits
from bench.core.machine import MachineProbe, TreeCpuSampler, cpu_model
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


def run_stages(
    profile: str, sets: list[str], run_dir: Path, longform: int, since: float | None = None
) -> dict[str, Any] | int:
    """The stages' wall seconds and the machine record, or the exit status of the stage that failed.
    ``since``: when ``make bench`` started (epoch seconds): the time until now is its installs."""
    stages: dict[str, float] = {}
    if since is not None:
        stages["install"] = round(time.time() - since, 1)
    # vLLM's engine core outlives its unreaping server: its CPU is only seen while it runs (TreeCpuSampler)
    with TreeCpuSampler() as tree, MachineProbe(own_cpu=tree.total) as probe:
        t0 = time.monotonic()
        for stage in STAGES:
            start = time.monotonic()
            rc = subprocess.call(stage_command(stage, profile, sets, run_dir, longform))
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
    a = p.parse_args(argv)
    doc = run_stages(a.profile, a.sets, a.run_dir, a.longform_pages, a.since)
    if isinstance(doc, int):
        return doc
    atomic_write_json(a.run_dir / "make_bench.json", doc)
    if a.profile == "default" and not a.sets:
        atomic_write_json(a.perf_dir / f"make-bench-{limits.cpu_slug(cpu_model())}.json", doc)
    print(f"make bench: {doc['total_s']:.0f} s (timings in {a.run_dir}/make_bench.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
