"""Tables across runs: several runs side by side, a reader change on the same questions, and ``make bench``'s
wall time per stage (split from :mod:`bench.reporting.tables`, which renders one run)."""

from __future__ import annotations

from typing import Any

from bench.core.schema import mean_of, ordered_variants
from bench.reporting.plots import vlabel
from bench.reporting.tables import DASH, fmt_metric, fmt_num, metric_label, table


def render_side_by_side(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """One column group per run (labelled run i = device · backend · quantisation · model)."""
    header = ["variant"]
    for i, (label, _) in enumerate(runs):
        header += [f"EM (run {i + 1}: {label})", f"F1-q (run {i + 1})", f"p50 ms (run {i + 1})"]
    rows = []
    for name in ordered_variants({n for _, s in runs for n in s.get("variants") or {}}):
        row = [vlabel(name)]
        for _, s in runs:
            v = (s.get("variants") or {}).get(name)
            v = v if isinstance(v, dict) else {}
            row += [
                fmt_metric(v.get("exact_match")),
                fmt_metric(v.get("f1_qstripped")),
                fmt_num(v.get("latency_p50_ms"), 0),
            ]
        rows.append(row)
    return table(header, rows)


def render_reader_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The same questions and variants under two readers: EM, containment, F1 (q-stripped), truncation."""
    metrics = ("exact_match", "contains", "f1_qstripped", "truncated")
    names = [n for n in ordered_variants(before.get("variants") or {}) if n in (after.get("variants") or {})]
    rows = []
    for name in names:
        b, a = before["variants"][name] or {}, after["variants"][name] or {}
        rows.append([vlabel(name), *(f"{fmt_metric(b.get(m))} → {fmt_metric(a.get(m))}" for m in metrics)])
    header = ["variant", *(f"{metric_label(m, 'k')} (before → after)" for m in metrics)]
    return table(header, rows)


# Issue 35: `make bench` from a fresh clone, install included, within 15 minutes on the 2-core AMD VMs.
MAKE_BENCH_GOAL_S = 900.0

STAGE_ORDER = ("install", "ingest", "index", "finetune", "install_wait", "run", "longform", "report")


def stage_order(timings: list[dict[str, Any]]) -> list[str]:
    """The stages of ``make_bench.json`` files in pipeline order (the JSON's keys are sorted), others last."""
    names = {str(s) for t in timings for s in (t.get("stages_s") or {})}
    return [s for s in STAGE_ORDER if s in names] + sorted(names - set(STAGE_ORDER))


def render_timing(timing: dict[str, Any], env: dict[str, Any] | None = None) -> str:
    """``make bench`` wall time per stage, from the ``make_bench.json`` that ``bench.perf.make_bench`` writes,
    with the machine it ran on (``env``: the run's own record, for a timing that predates the machine's)."""
    from bench.core.machine import machine_line

    stages = timing.get("stages_s") or {}
    total = mean_of(timing.get("total_s"))
    rows = [
        [name, f"{float(stages[name]):.0f}", f"{float(stages[name]) / 60:.1f}"]
        for name in stage_order([timing])
    ]
    rows.append(
        [
            "**total**",
            DASH if total is None else f"{total:.0f}",
            DASH if total is None else f"{total / 60:.1f}",
        ]
    )
    body = table(["stage", "seconds", "minutes"], rows)
    if timing.get("machine"):
        where = machine_line(timing["machine"])
    else:  # written before make_bench.json kept a machine record: the run's CPU, contention unknown
        where = f"{(env or {}).get('cpu_model') or 'CPU not recorded'}; contention not recorded"
    commit = str(timing.get("git_commit") or (env or {}).get("git_commit") or DASH)[:12]
    text = f"{body.rstrip()}\n\nMeasured on: {where}; commit `{commit}`, {timing.get('finished', DASH)}.\n"
    return text if total is None else text + f"\n{goal_line(total)}\n"


def goal_line(total_s: float) -> str:
    """Whether this timing meets issue 35's goal, in the terms of the machine it names."""
    verdict = "met" if total_s <= MAKE_BENCH_GOAL_S else "not met"
    return (
        f"Goal: ≤ {MAKE_BENCH_GOAL_S / 60:.0f} minutes from a fresh clone on the project's 2-core machines — "
        f"{verdict} on this one ({total_s / 60:.1f} min); each machine kind's own timing: "
        "docs/performance.md, `make bench` on each machine kind."
    )
