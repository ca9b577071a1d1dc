"""Where a passage-reading variant loses: each wrong answer attributed to one cause, from its answers.jsonl
row alone.

A *wrong* answer has ``exact_match`` 0 and no error. Its *value* is what it names of the type the question
asks for (:func:`bench.eval.spans.kind_of_row`): the first 3-4 digit number of a year answer, the first comma-
or bracket-separated part of a place or state answer, the whole answer otherwise. "Found in a passage" is the
word-aligned containment of :func:`bench.core.metrics.contains` after :func:`~bench.core.metrics.normalize_pt`
(case, accents, numbers); "equals" is the scoring's EM rule with its place handling (:func:`same_value`). A
passage is *from the gold page* when its title is the row's ``gold_title``. The classes, first match wins:

* ``empty``: the answer normalises to nothing;
* ``right_plus_extra``: a gold answer lies inside the answer, with extra words (a date beside the year);
* ``format``: the answer names no value of the type asked (no year for a year question, a date for a place);
* ``retrieval_miss``: no passage the prompt held is from the gold page;
* ``other_slot``: the value is the *other* slot of the gold lead's life span ``Nome (Local, data — Local,
  data)``: the death year given for the birth year, the birth place for the death place, …;
* ``gold_page_other_value``: the value is in a gold-page passage (another value of the subject's page);
* ``other_page``: the value is only in passages of other pages (another person's page);
* ``not_in_passages``: the value is in no passage (from the model's memory, or made up).

The gold lead comes from ``contexts`` (question id → the question file's ``context``), else from the
``oracle`` rows' passage for the same question, else from the row's gold-page lead chunk (section ``""``).
Variants whose rows carry a ``counterfactual`` record are left out: their passages were edited on purpose
(:mod:`bench.eval.faithfulness` scores them). ``em_by_distractors`` groups every row with a gold title by the
number of passages not from the gold page.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.core import metrics as m
from bench.core import stats
from bench.eval.baselines import BASELINES
from bench.eval.spans import PLACE_KINDS, capitalised, closing_paren, kind_of_row, years
from bench.eval.variants import VARIANTS

EMPTY, RIGHT_PLUS_EXTRA, FORMAT = "empty", "right_plus_extra", "format"
RETRIEVAL_MISS, OTHER_SLOT = "retrieval_miss", "other_slot"
GOLD_PAGE_OTHER_VALUE, OTHER_PAGE, NOT_IN_PASSAGES = "gold_page_other_value", "other_page", "not_in_passages"
CLASSES = (
    RETRIEVAL_MISS, OTHER_PAGE, GOLD_PAGE_OTHER_VALUE, OTHER_SLOT, RIGHT_PLUS_EXTRA, NOT_IN_PASSAGES,
    FORMAT, EMPTY,
)  # fmt: skip
VALUE_CLASSES = frozenset(CLASSES) - {EMPTY, FORMAT, RIGHT_PLUS_EXTRA}  # a wrong value that positions count
OTHER_SLOT_OF = {
    "birth_year": "death_year",
    "death_year": "birth_year",
    "birth_place": "death_place",
    "death_place": "birth_place",
}
_PARTS = re.compile(r"\s*[,(;]\s*")
_DASH = re.compile(r"\s*[—–]\s*|\s+-\s+")
# Any 3-4 digit number reads as a year here, also an impossible one: "2076" for 1976 is a wrong year, not a
# format error (spans.years only yields plausible years).
_YEARISH = re.compile(r"(?<![\d.,])\d{3,4}(?![\d.,]?\d)")


@dataclass(frozen=True)
class Attribution:
    cls: str
    positions: tuple[int, ...] = ()  # 1-based passages holding the answer's value (value classes only)


def same_value(answer: str, golds: Sequence[str], place: bool) -> bool:
    """The scoring's EM rule: normalised equality, and for a place a gold's head and the answer's head."""
    if place:
        golds = m.place_golds(golds)
        answer = m.place_head(answer, golds)
    return m.exact_match(answer, golds) == 1.0


def answer_value(answer: str, kind: str | None) -> str | None:
    """The value an answer names for a question of ``kind``; None when it names none (a format error)."""
    if kind == "year":
        return next((match.group(0) for match in _YEARISH.finditer(answer)), None)
    if kind in PLACE_KINDS:
        head = _PARTS.split(answer.strip(), maxsplit=1)[0]
        return head if head and not any(ch.isdigit() for ch in head) else None
    return answer.strip() or None


def life_span(context: str) -> tuple[str, str] | None:
    """(birth side, death side) of the first parenthesis holding a year (``""`` for a living subject)."""
    for match in re.finditer(r"\(", context):
        close = closing_paren(context, match.start())
        if close < 0:
            continue
        sides = _DASH.split(context[match.start() + 1 : close], maxsplit=1)
        if any(True for _ in years(sides[0])):
            return sides[0], sides[1] if len(sides) > 1 else ""
    return None


def other_slot_value(relation: str | None, context: str) -> str | None:
    """The value of the other slot of ``relation``'s pair in the lead's life span (None: none there)."""
    other = OTHER_SLOT_OF.get(relation or "")
    sides = life_span(context) if other else None
    if not other or sides is None:
        return None
    side = sides[1] if other.startswith("death") else sides[0]
    spans = list(years(side))[-1:] if other.endswith("year") else list(capitalised(side))[:1]
    return spans[0].text if spans else None


def _relation(row: Mapping[str, Any]) -> str | None:
    rel = (row.get("groups") or {}).get("relation") or row.get("relation")
    return str(rel) if rel else None


def _lead_context(row: Mapping[str, Any]) -> str:
    passages = row.get("passages") or []
    gold = [p for p in passages if p.get("title") == row.get("gold_title")]
    lead = [p for p in gold if not p.get("section")] or gold
    return " ".join(str(p.get("text") or "") for p in lead)


def classify(row: Mapping[str, Any], context: str | None = None) -> Attribution:
    """The class of one wrong answer (see the module docstring); ``context`` is the gold lead, if known."""
    answer, golds, kind = str(row.get("answer") or ""), list(row.get("answers") or []), kind_of_row(row)
    place = kind in PLACE_KINDS
    if not m.normalize_pt(answer):
        return Attribution(EMPTY)
    if m.contains(answer, m.place_golds(golds) if place else golds):
        return Attribution(RIGHT_PLUS_EXTRA)
    value = answer_value(answer, kind)
    if value is None:
        return Attribution(FORMAT)
    passages = row.get("passages") or []
    found = tuple(i for i, p in enumerate(passages, 1) if m.contains(str(p.get("text") or ""), [value]))
    gold_pages = {i for i, p in enumerate(passages, 1) if p.get("title") == row.get("gold_title")}
    if not gold_pages:
        return Attribution(RETRIEVAL_MISS, found)
    other = other_slot_value(_relation(row), context or _lead_context(row))
    if other and same_value(value, [other], place):
        return Attribution(OTHER_SLOT, found)
    if gold_pages & set(found):
        return Attribution(GOLD_PAGE_OTHER_VALUE, found)
    return Attribution(OTHER_PAGE if found else NOT_IN_PASSAGES, found)


def row_em(row: Mapping[str, Any]) -> float:
    """The row's exact match; a failed question counts 0."""
    return 0.0 if row.get("error") else float((row.get("metrics") or {}).get("exact_match") or 0.0)


def is_wrong(row: Mapping[str, Any]) -> bool:
    return not row.get("error") and row_em(row) == 0.0


def em_by_distractors(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{number of passages not from the gold page: EM rate with its Wilson interval} (failures count 0)."""
    groups: dict[int, list[float]] = {}
    for r in rows:
        if r.get("gold_title") and r.get("passages"):
            d = sum(p.get("title") != r["gold_title"] for p in r["passages"])
            groups.setdefault(d, []).append(row_em(r))
    return {str(d): stats.rate_ci(groups[d]) for d in sorted(groups)}


def _positions(found: Sequence[Attribution]) -> dict[str, Any]:
    valued = [a for a in found if a.cls in VALUE_CLASSES]
    in_any = Counter(str(i) for a in valued for i in a.positions)
    only = Counter(str(a.positions[0]) for a in valued if len(a.positions) == 1)
    return {"with_value": len(valued), "in": dict(sorted(in_any.items())), "only": dict(sorted(only.items()))}


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def attribute_variant(rows: Sequence[Mapping[str, Any]], contexts: Mapping[str, str]) -> dict[str, Any]:
    """Class counts and shares of one variant's wrong answers, passage positions, EM by distractors."""
    wrong = [r for r in rows if is_wrong(r) and r.get("gold_title")]
    found = [classify(r, contexts.get(str(r.get("question_id")))) for r in wrong]
    counts = Counter(a.cls for a in found)
    return {
        "n": len(rows),
        "failed": sum(1 for r in rows if r.get("error")),
        "wrong": len(wrong),
        "unattributed": sum(1 for r in rows if is_wrong(r) and not r.get("gold_title")),
        "classes": {c: {"count": counts[c], "share": _share(counts[c], len(wrong))} for c in CLASSES},
        "positions": _positions(found),
        "em_by_distractors": em_by_distractors(rows),
    }


def reads_passages(name: str, rows: Sequence[Mapping[str, Any]]) -> bool:
    """A model variant that read passages (no counterfactual edit); unknown names: by their rows."""
    if not rows or any("counterfactual" in r for r in rows):
        return False
    spec = VARIANTS.get(name)
    if spec is not None:
        return spec.uses_model and spec.context != "none" and not getattr(spec, "edit", "")
    return name not in BASELINES and any(r.get("passages") for r in rows)


def gold_contexts(rows_by_variant: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, str]:
    """Question id → the gold passage the ``oracle`` variant read (the question's gold lead)."""
    return {
        str(r.get("question_id")): " ".join(str(p.get("text") or "") for p in r.get("passages") or [])
        for r in rows_by_variant.get("oracle") or []
        if r.get("passages")
    }


def attribution(
    rows_by_variant: Mapping[str, Sequence[Mapping[str, Any]]], contexts: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``scores.json`` ``attribution``: {variant: :func:`attribute_variant`} per passage-reading variant."""
    leads = {**gold_contexts(rows_by_variant), **(contexts or {})}
    return {
        name: attribute_variant(rows, leads)
        for name, rows in rows_by_variant.items()
        if reads_passages(name, rows)
    }
