"""Fact questions without the subject's name, a harder retrieval probe (``bench questions describe``).

Every fact question of ``questions generate`` names its article's title verbatim, so on a small corpus the
gold page is retrieved first almost always. A *described* question names the subject by what its lead says it
is and by another of its facts instead: "Onde nasceu o escritor brasileiro nascido em 1912?" for "Onde nasceu
Edison Carneiro?". The description is the lead's predicate noun phrase (``é/foi um(a) …`` up to the first
comma, semicolon or full stop); the clue is the birth year (the birth place for birth-year questions), taken
from the same page's other fact questions. A row is skipped (counted by reason) when the lead has no such
phrase, the phrase or the clue repeats a word of the title or states the answer, the page has no clue fact, or
the relation is ``municipality_state`` (its description is the answer). Answers, title, article and context
stay those of the source row; ids get a ``-described`` suffix. Deterministic: the same file gives the same
output.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from bench.core.metrics import normalize_pt

_PREDICATE = re.compile(
    r"\b(?:é|foi|era)\s+(um|uma)\s+([^,;.()\[\]]{3,80}?)(?=\s*[,;.]|\s+(?:que|e\s+(?:um|uma))\b|\s*$)"
)
QUESTIONS = {  # relation -> (question stem, the clue relation)
    "birth_place": ("Onde nasceu", "birth_year"),
    "birth_year": ("Em que ano nasceu", "birth_place"),
    "death_place": ("Onde morreu", "birth_year"),
    "death_year": ("Em que ano morreu", "birth_year"),
}


def predicate(lead: str) -> tuple[str, str] | None:
    """(article "o"/"a", the description) of a lead sentence, or None."""
    m = _PREDICATE.search(lead)
    if not m:
        return None
    return ("o" if m.group(1) == "um" else "a"), " ".join(m.group(2).split())


def _words(text: str) -> set[str]:
    return {w for w in normalize_pt(text).split() if len(w) > 3}


def describe(row: dict[str, Any], facts: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    """The described form of one fact question (None and why not)."""
    relation = str(row.get("relation") or "")
    if relation not in QUESTIONS:
        return None, "relation"
    found = predicate(str(row.get("context") or ""))
    if found is None:
        return None, "no_description"
    article, desc = found
    stem, clue_rel = QUESTIONS[relation]
    clue = facts.get(clue_rel)
    if not clue:
        return None, "no_clue"
    if _words(f"{desc} {clue}") & _words(str(row.get("title") or "")):
        return None, "names_the_subject"
    born = "nascido" if article == "o" else "nascida"
    question = f"{stem} {article} {desc} {born} em {clue}?"
    folded = f" {normalize_pt(question)} "
    if any(f" {normalize_pt(a)} " in folded for a in row.get("answers") or []):
        return None, "states_the_answer"
    out = {**row, "id": f"{row['id']}-described", "question": question, "template": "described"}
    return out, "kept"


def describe_rows(rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Described forms of ``rows`` (facts per page from every row given, all splits); counts per outcome."""
    rows = list(rows)
    facts: dict[Any, dict[str, str]] = defaultdict(dict)
    for r in rows:
        if r.get("relation") and r.get("answers"):
            facts[r.get("article_id") or r.get("title")].setdefault(str(r["relation"]), str(r["answers"][0]))
    out, counts = [], Counter[str]()
    for r in rows:
        described, why = describe(r, facts[r.get("article_id") or r.get("title")])
        counts[why] += 1
        if described is not None:
            out.append(described)
    return out, counts
