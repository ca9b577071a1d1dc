"""The long-form run's language table (bench/eval/longform.py): per variant, how many of its sentence answers
a language classifier could read, and which language they are in — the column a fact run cannot fill."""

from __future__ import annotations

from typing import Any

from bench.core.schema import dig
from bench.reporting.plots import vlabel
from bench.reporting.report import run_label
from bench.reporting.tables import fmt_metric


def _count(metric: dict[str, Any] | None) -> int:
    return int((metric or {}).get("n") or 0)


def render_longform(scores: dict[str, Any]) -> str:
    """Markdown: one row per variant (answers, classifiable, PT/EN/other rates, a fact stated, truncated)."""
    variants: dict[str, Any] = scores.get("variants") or {}
    n_questions = int(dig(scores, "datasets.questions.n") or 0)
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
        cells = [fmt_metric(v.get(m)) for m in ("lang_pt", "lang_en", "lang_other", "contains", "truncated")]
        n, classified = v.get("n", 0), _count(v.get("lang_pt"))
        rows.append(f"| {vlabel(name)} | {n} | {classified} | {' | '.join(cells)} |")
    return "\n".join(rows) + "\n"
