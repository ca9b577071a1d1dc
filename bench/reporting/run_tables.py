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


def render_timing(timing: dict[str, Any]) -> str:
    """``make bench`` wall time per stage, from the ``make_bench.json`` the Makefile writes."""
    stages = timing.get("stages_s") or {}
    total = mean_of(timing.get("total_s"))
    rows = [[str(name), f"{float(sec):.0f}", f"{float(sec) / 60:.1f}"] for name, sec in stages.items()]
    rows.append(
        [
            "**total**",
            DASH if total is None else f"{total:.0f}",
            DASH if total is None else f"{total / 60:.1f}",
        ]
    )
    return table(["stage", "seconds", "minutes"], rows)
