"""``python -m bench.perf limits|breakdown|train-ab|op-profile``: issue 35's measurements (``make perf``:
limits, breakdown and op-profile).

``limits``: this machine's matmul peaks and bandwidth, then a short run of each stage, written to
``results/perf/limits-<cpu>.json``. ``breakdown``: where the committed default run's time went, written to
``results/perf/time-breakdown.json``. ``train-ab``: training tokens/s of ``--before`` and ``--after``
settings, interleaved in one process, or each run in its own with ``--before-env``/``--after-env``
(``results/perf/train-ab.json``; ``train-steps`` is one such run). ``op-profile``: a training step and
an embedding pass under torch.profiler, time per op family (``results/perf/op-profile-<cpu>.json``).
``install``: ``make install`` in fresh clones, warm and cold package caches (``results/perf/install.json``).
``--set`` takes config overrides (``results_dir=...`` reuses another checkout's assembled models)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bench.config import load_config
from bench.environment import configure_env
from bench.io import atomic_write_json
from bench.perf import report, stages

PARTS = ("training", "embedding", "generation")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    p.add_argument(
        "what", choices=("limits", "breakdown", "train-ab", "op-profile", "train-steps", "install")
    )
    p.add_argument("--caches", default="warm,cold", help="install: the runs' package caches, in order")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--parts", default=",".join(PARTS), help="limits: stages to measure (comma-separated)")
    p.add_argument("--train-steps", type=int, default=8)
    p.add_argument("--after-steps", type=int, default=None, help="train-ab: the after runs' steps (a batch)")
    p.add_argument("--embed-chunks", type=int, default=128)
    p.add_argument("--run", type=Path, default=Path("results/runs/default"), help="breakdown: the run")
    p.add_argument("--no-probe", action="store_true", help="breakdown: skip timing the before-probe")
    p.add_argument("--before", action="append", default=[], help="train-ab: settings of the 'before' runs")
    p.add_argument("--after", action="append", default=[], help="train-ab: settings of the 'after' runs")
    p.add_argument(
        "--before-env", action="append", default=[], metavar="NAME=VALUE",
        help="train-ab: an environment variable of the 'before' runs (then every run has its own process)",
    )  # fmt: skip
    p.add_argument("--after-env", action="append", default=[], metavar="NAME=VALUE", help="train-ab: ditto")
    p.add_argument(
        "--order", default=",".join(report.AB_ORDER), help="train-ab: run order, e.g. before,after"
    )
    p.add_argument("-o", "--output", type=Path, default=None)
    a = p.parse_args(argv)
    configure_env()  # the process-wide defaults the CLI's stages run with (bench/environment.py)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = load_config(None, a.sets)
    if a.what == "limits":
        parts = tuple(x for x in a.parts.split(",") if x)
        unknown = set(parts) - set(PARTS)
        if unknown:
            p.error(f"unknown --parts {sorted(unknown)}; known: {', '.join(PARTS)}")
        doc = report.measure(cfg, parts, a.train_steps, a.embed_chunks)
        out = a.output or report.limits_path()
    elif a.what == "op-profile":
        from bench.perf import opprofile

        doc = opprofile.measure(cfg)
        out = a.output or report.limits_path(prefix="op-profile")
    elif a.what == "install":
        from bench.perf import install

        doc = install.measure(tuple(x for x in a.caches.split(",") if x))
        out = a.output or report.PERF_DIR / "install.json"
    elif a.what == "train-steps":  # one side of train-ab in a process of its own (--before-env/--after-env)
        doc = stages.train_steps(cfg, a.train_steps, tuple(a.sets))
        out = a.output or report.PERF_DIR / "train-steps.json"
    elif a.what == "breakdown":
        doc = report.time_breakdown(cfg, a.run, probe=not a.no_probe)
        out = a.output or report.PERF_DIR / "time-breakdown.json"
    else:
        order = tuple(x for x in a.order.split(",") if x)
        if set(order) != {"before", "after"}:
            p.error("--order names both before and after, comma-separated")
        envs = {"before": tuple(a.before_env), "after": tuple(a.after_env)}
        bad = [e for e in (*a.before_env, *a.after_env) if "=" not in e]
        if bad:
            p.error(f"--before-env/--after-env take NAME=VALUE, got {bad}")
        doc = report.train_ab(cfg, a.train_steps, tuple(a.before), tuple(a.after), order, a.after_steps, envs)
        out = a.output or report.PERF_DIR / "train-ab.json"
    atomic_write_json(out, doc)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
