"""When context and memory disagree: counterfactual variants (``rag_cf``, ``ft_rag_cf``) read passages in
which every occurrence of the gold value was replaced by another value. Their answers.jsonl rows carry
``"counterfactual": {"value": <the substituted value>, "replaced": <occurrences replaced>}``.

Over the rows with ``replaced > 0`` (and a substituted value that is not itself a gold answer), each answer
either

* ``follows_context``: it matches the substituted value (the scoring's EM rule, place handling included);
* ``follows_memory``: it matches an original gold answer (the reader kept what it knew, or guessed right);
* ``neither``: anything else, failures included.

Each is a rate with its 95 % Wilson interval over those rows; rows without the record are ignored, so the
scores need no counterfactual variant to exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.core import stats
from bench.eval.attribution import same_value
from bench.eval.spans import PLACE_KINDS, kind_of_row

OUTCOMES = ("follows_context", "follows_memory", "neither")


def _record(row: Mapping[str, Any]) -> dict[str, Any] | None:
    cf = row.get("counterfactual")
    return cf if isinstance(cf, dict) else None


def conflict(row: Mapping[str, Any]) -> str | None:
    """The substituted value when the row's passages really contradict the gold answers, else None."""
    cf = _record(row)
    if cf is None or int(cf.get("replaced") or 0) <= 0 or not str(cf.get("value") or "").strip():
        return None
    value = str(cf["value"])
    place = kind_of_row(row) in PLACE_KINDS
    return None if same_value(value, list(row.get("answers") or []), place) else value


def outcome(row: Mapping[str, Any], value: str) -> str:
    """``follows_context``, ``follows_memory`` or ``neither`` for one conflicting row."""
    if row.get("error"):
        return "neither"
    answer, place = str(row.get("answer") or ""), kind_of_row(row) in PLACE_KINDS
    if same_value(answer, [value], place):
        return "follows_context"
    if same_value(answer, list(row.get("answers") or []), place):
        return "follows_memory"
    return "neither"


def faithfulness_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rates of the three outcomes over one variant's conflicting rows; ``skipped``: rows without one."""
    found = [outcome(r, v) for r in rows if (v := conflict(r)) is not None]
    out: dict[str, Any] = {"n": len(found), "skipped": len(rows) - len(found)}
    out.update({name: stats.rate_ci([float(x == name) for x in found]) for name in OUTCOMES})
    return out


def faithfulness(rows_by_variant: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """``scores.json`` ``faithfulness``: {variant: :func:`faithfulness_of`} for variants with a counterfactual
    row (none: ``{}``)."""
    return {
        name: faithfulness_of(rows)
        for name, rows in rows_by_variant.items()
        if any(_record(r) is not None for r in rows)
    }
