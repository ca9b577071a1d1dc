"""The long-form run's language table (bench/eval/longform.py): per variant, how many of its sentence answers
a language classifier could read, and which language they are in — the column a fact run cannot fill."""

from __future__ import annotations

from typing import Any

from bench.reporting.report import run_label
from bench.reporting.tables import DASH


def _rate(metric: dict[str, Any] | None) -> str:
    if not metric or metric.get("mean") is None:
        return DASH
    lo, hi = metric.get("ci95") or (None, None)
    interval = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
    return f"{metric['mean']:.3f}{interval}"


def _count(metric: dict[str, Any] | None) -> int:
    return int((metric or {}).get("n") or 0)


def render_longform(scores: dict[str, Any]) -> str:
    """Markdown: one row per variant (answers, classifiable, PT/EN/other rates, a fact stated, truncated)."""
    variants: dict[str, Any] = scores.get("variants") or {}
    n_questions = dig_n(scores)
    head = (
        f"Run `{scores.get('run_id')}` ({run_label(scores)}): {n_questions} open questions, one per page, "
        "answered in one or two sentences (reader `longform`). Language rates are over the answers the "
        "classifier could read (n); 95 % Wilson intervals.\n\n"
        "| variant | answers | classifiable (n) | PT | EN | other | states a gold fact "
        "| cut at the token cap |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [head]
    for name, v in variants.items():
        rows.append(
            f"| {name} | {v.get('n', 0)} | {_count(v.get('lang_pt'))} | {_rate(v.get('lang_pt'))} "
            f"| {_rate(v.get('lang_en'))} | {_rate(v.get('lang_other'))} | {_rate(v.get('contains'))} "
            f"| {_rate(v.get('truncated'))} |"
        )
    return "\n".join(rows) + "\n"


def dig_n(scores: dict[str, Any]) -> int:
    return int(((scores.get("datasets") or {}).get("questions") or {}).get("n") or 0)
