"""Markdown tables of the reader diagnostics in ``scores.json`` (:mod:`bench.eval.diagnostics`): where the
reader loses (wrong answers by cause), EM by the number of distractor passages, and what a reader does when
its context contradicts its memory. Each renderer returns None for a run without the key (older runs)."""

from __future__ import annotations

from typing import Any

from bench.core.schema import ordered_variants
from bench.eval.attribution import CLASSES
from bench.eval.faithfulness import OUTCOMES
from bench.reporting.plots import per_run, vlabel
from bench.reporting.tables import DASH, fmt_metric, table

CLASS_LABELS = {
    "retrieval_miss": "gold page not among the passages",
    "other_page": "value from another page's passage",
    "gold_page_other_value": "another value of the gold page",
    "other_slot": "the other slot (birth ↔ death)",
    "right_plus_extra": "right value plus extra words",
    "not_in_passages": "value in no passage",
    "format": "no value of the type asked",
    "empty": "empty answer",
}
OUTCOME_LABELS = {
    "follows_context": "follows the context",
    "follows_memory": "follows memory (the original gold)",
    "neither": "neither",
}


def _section(scores: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """{variant: body} of a diagnostics key, bodies that are not objects dropped ({} when absent)."""
    found = scores.get(key)
    if not isinstance(found, dict):
        return {}
    return {name: body for name, body in found.items() if isinstance(body, dict)}


def _count_cell(count: Any, total: Any) -> str:
    if not isinstance(count, int):
        return DASH
    share = f" ({100 * count / total:.1f} %)" if isinstance(total, int) and total > 0 else ""
    return f"{count}{share}"


def _class_row(found: dict[str, dict[str, Any]], names: list[str], cls: str) -> list[str]:
    cells = [_count_cell((found[n].get("classes") or {}).get(cls, {}).get("count"), found[n].get("wrong"))
             for n in names]  # fmt: skip
    return [f"{CLASS_LABELS.get(cls, cls)} (`{cls}`)", *cells]


def _position_rows(found: dict[str, dict[str, Any]], names: list[str]) -> list[list[str]]:
    """The wrong values named (not the gold, not a format error), then one row per passage position: how
    many of them it holds (share), and how many it alone holds."""
    positions = {name: found[name].get("positions") or {} for name in names}
    rows = [["**wrong values named**", *(str(positions[n].get("with_value", DASH)) for n in names)]]
    for k in sorted({k for p in positions.values() for k in p.get("in") or {}}, key=int):
        cells = []
        for p in (positions[n] for n in names):
            held = _count_cell((p.get("in") or {}).get(k, 0), p.get("with_value"))
            cells.append(f"{held}; alone {(p.get('only') or {}).get(k, 0)}")
        rows.append([f"… in passage {k}", *cells])
    return rows


@per_run
def render_attribution(scores: dict[str, Any]) -> str | None:
    """Classes × variants: count of wrong answers (share of the variant's wrong answers), then where the
    wrong values sit among the passages (position 1 = the first passage of the prompt)."""
    found = _section(scores, "attribution")
    if not found:
        return None
    names = ordered_variants(found)
    rows = [_class_row(found, names, c) for c in CLASSES]
    wrong = [f"{found[n].get('wrong', DASH)} / {found[n].get('n', DASH)}" for n in names]
    rows += [["**wrong answers** (EM 0, no error) / n", *wrong], *_position_rows(found, names)]
    return table(["cause", *(vlabel(n) for n in names)], rows)


def _em_cell(estimate: Any) -> str:
    return f"{fmt_metric(estimate)} (n={estimate.get('n')})" if isinstance(estimate, dict) else DASH


@per_run
def render_distractors(scores: dict[str, Any]) -> str | None:
    """Rows = number of passages not from the gold page, columns = variants, cells = EM [Wilson] (n)."""
    found = _section(scores, "attribution")
    per = {n: body for n, b in found.items() if isinstance(body := b.get("em_by_distractors"), dict) and body}
    if not per:
        return None
    names = ordered_variants(per)
    counts = sorted({k for body in per.values() for k in body}, key=int)
    rows = [[k, *(_em_cell(per[n].get(k)) for n in names)] for k in counts]
    return table(["passages from other pages", *(f"{vlabel(n)} EM" for n in names)], rows)


@per_run
def render_faithfulness(scores: dict[str, Any]) -> str | None:
    """Counterfactual variants: share of conflicting questions whose answer follows the edited context, the
    model's memory, or neither (95 % Wilson intervals)."""
    found = _section(scores, "faithfulness")
    if not found:
        return None
    rows = [
        [vlabel(n), str(found[n].get("n", DASH)), *(fmt_metric(found[n].get(o)) for o in OUTCOMES)]
        for n in ordered_variants(found)
    ]
    header = ["variant", "n (passages contradict the gold)", *(OUTCOME_LABELS[o] for o in OUTCOMES)]
    return table(header, rows)


@per_run
def render_diagnostics(scores: dict[str, Any]) -> list[str]:
    """The report lines (heading, blank, table) of each diagnostics table the run has; [] for none."""
    sections = (
        ("Where the reader loses (wrong answers by cause: count, share)", render_attribution),
        ("EM by distractor passages (95 % Wilson)", render_distractors),
        ("When context and memory disagree (counterfactual passages; 95 % Wilson)", render_faithfulness),
    )
    out: list[str] = []
    for heading, render in sections:
        if (body := render(scores)) is not None:
            out += [f"#### {heading}", "", body]
    return out
