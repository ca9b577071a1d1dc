"""Typed answer spans without a model: what a question asks for, and the best span of that type in passages.

:func:`answer_kind` reads the question's wording (``quando``/``em que ano`` → year, ``onde``/``em que
cidade``/``local`` → place, ``em que estado`` → state, ``quantos``/``qual o número`` → number, ``quem`` →
person); a question row's ``relation`` overrides the wording. :func:`pick_span` then returns the best span of
that type in the passages the reader saw, using only generic Portuguese patterns:

1. the lead parenthesis of a biography, ``Nome (Local, data — Local, data)``, right after words of the
   question (the subject's name): its first side for birth, the side after the dash for death; a year is
   the side's last year, a place its first capitalised span;
2. otherwise every span of the type in the passages, the one nearest a question content word winning (ties:
   the earlier passage, then the earlier span). A state question keeps only the names of Brazilian states.

No page-specific rule and no model: this is the typed no-model baseline a reader has to beat.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.core.metrics import PT_FUNCTION_WORDS, normalize_pt
from bench.questions.factpatterns import STATES, fold

KINDS = ("year", "place", "state", "number", "person")
PLACE_KINDS = frozenset({"place", "state"})
RELATION_KINDS = {
    "birth_year": "year",
    "death_year": "year",
    "birth_place": "place",
    "death_place": "place",
    "municipality_state": "state",
}
_WORDING = (  # (kind, pattern on the folded question), first match wins
    ("year", re.compile(r"\b(?:quando|em que ano|que ano|qual (?:e )?o ano|ano d[aeo])\b")),
    ("state", re.compile(r"\b(?:em|de|a) que estado\b|\bqual (?:e )?o estado\b")),
    ("place", re.compile(r"\b(?:onde|em que (?:cidade|pais|municipio|regiao)|local|localidade)\b")),
    ("number", re.compile(r"\b(?:quant[oa]s?|qual (?:e )?o numero|que numero)\b")),
    ("person", re.compile(r"\bquem\b")),
)  # fmt: skip
DEATH_WORDS = re.compile(r"\b(?:morreu|morte|faleceu|falecimento|obito)\b")
BIRTH_WORDS = re.compile(r"\b(?:nasceu|nascimento|nascid[oa])\b")


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Question words that name the type or the event, not the subject: never "near the subject".
_QUESTION_WORDS = _wordset(
    "quando onde quem qual quais quanto quanta quantos quantas ano cidade local localidade estado pais "
    "municipio nasceu nascimento morreu morte faleceu e foi era pertence fica brasil numero"
)  # fmt: skip
_LOWER_STARTS = PT_FUNCTION_WORDS | _wordset(  # not "sao" (São Paulo) nor "la" (La Paz)
    "o a os as um uma ele ela eles elas foi e era este esta esse essa entre apos durante segundo "
    "como mas quando onde seu sua tambem nao ha ja ainda depois entao assim hoje aqui apesar"
)  # fmt: skip
_YEAR = re.compile(r"(?<![\d.,])(\d{3,4})(?![\d.,]?\d)")
_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:[ .\u00a0]\d{3})+(?:,\d+)?(?!\d)|(?<![\w.,])\d+(?:,\d+)?(?!\d)")
_UNIT = re.compile(r"\s*(%|km²|km2|km|m²|m|kg|t|ha|habitantes|metros|quilômetros|anos|pessoas|votos)\b")
_WORD = r"[A-ZÀ-Ý][^\W\d_]*(?:[-'’][^\W\d_]+)*\.?"
_CAPS = re.compile(rf"{_WORD}(?:\s+(?:(?:de|do|da|dos|das|del|von|van)\s+)?{_WORD})*")
_FULL_STOP = re.compile(r"(?<=[^\W\d_]{4})\.\s+")
_DASH = re.compile(r"\s*[—–]\s*|\s+-\s+")
MIN_YEAR, MAX_YEAR = 100, 2030
_SENTENCE_START = re.compile(r"[.!?]\s+(?=[A-ZÀ-Ý])|\n")  # "Jr. (" does not start a sentence
_LEAD_TAIL = re.compile(r"\s*,?\s*(?:é|foi|era)\b")
LEAD_WINDOW = 120  # characters before "(" searched for the subject's words


@dataclass(frozen=True)
class Span:
    text: str
    start: int  # character offset in its passage


def answer_kind(question: str, relation: str | None = None) -> str | None:
    """The answer type a question asks for (one of KINDS), or None when its wording says nothing."""
    if relation and relation in RELATION_KINDS:
        return RELATION_KINDS[relation]
    q = fold(question)
    return next((kind for kind, pattern in _WORDING if pattern.search(q)), None)


def kind_of_row(row: Mapping[str, Any]) -> str | None:
    return answer_kind(str(row.get("question") or ""), _relation(row))


def _relation(row: Mapping[str, Any]) -> str | None:
    rel = row.get("relation") or (row.get("groups") or {}).get("relation")
    return str(rel) if rel else None


def subject_words(question: str) -> set[str]:
    """The question's content words minus words that only say what is asked (year, place, born, …)."""
    return {t for t in normalize_pt(question).split() if t not in PT_FUNCTION_WORDS | _QUESTION_WORDS}


def years(text: str) -> Iterator[Span]:
    for m in _YEAR.finditer(text):
        if MIN_YEAR <= int(m.group(1)) <= MAX_YEAR:
            yield Span(m.group(1), m.start())


def numbers(text: str) -> Iterator[Span]:
    for m in _NUMBER.finditer(text):
        unit = _UNIT.match(text, m.end())
        value = m.group(0) + (unit.group(0) if unit else "")
        yield Span(value.strip(), m.start())


def capitalised(text: str) -> Iterator[Span]:
    """Capitalised word sequences (with de/do/da/dos/das inside), leading sentence words dropped."""
    for m in _CAPS.finditer(text):
        # "Smith. Obteve": a full stop after a word longer than an abbreviation ends the sequence
        head = _FULL_STOP.split(m.group(0), maxsplit=1)[0]
        words, start = head.split(), m.start()
        while words and fold(words[0]).rstrip(".") in _LOWER_STARTS:
            start = text.index(words[1], start + len(words[0])) if len(words) > 1 else start
            words = words[1:]
        while words and fold(words[-1]) in PT_FUNCTION_WORDS:
            words = words[:-1]
        if words and len(" ".join(words).rstrip(".")) > 1:  # not an initial on its own
            yield Span(" ".join(words).rstrip("."), start)


def states(text: str) -> Iterator[Span]:
    wanted = {fold(s): s for s in STATES}
    for span in capitalised(text):
        folded = fold(span.text)
        for key, name in wanted.items():  # "Mato Grosso do Sul" is listed before "Mato Grosso"
            if folded == key or folded.startswith(key + " ") or folded.endswith(" " + key):
                yield Span(name, span.start)
                break


def _typed(kind: str | None, text: str) -> list[Span]:
    if kind == "year":
        return list(years(text))
    if kind == "number":
        return list(numbers(text))
    if kind == "state":
        return list(states(text))
    return list(capitalised(text))  # place, person, or an unknown kind: a name is the best bet


def closing_paren(text: str, open_at: int) -> int:
    """The index of the parenthesis closing the one at ``open_at`` (-1 when it is never closed)."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def lead_parenthesis(kind: str, death: bool, subject: set[str], passages: Sequence[str]) -> str | None:
    """The answer from a ``Nome (Local, data — Local, data)`` parenthesis after the subject's words; "" for a
    death question about a subject whose life span has no death side (a living person); None: no such
    parenthesis."""
    best: tuple[int, str] | None = None
    for text in passages:
        for m in re.finditer(r"\(", text):
            before = text[max(0, m.start() - LEAD_WINDOW) : m.start()]
            before = _SENTENCE_START.split(before)[-1]
            close = closing_paren(text, m.start())
            lead = close >= 0 and bool(_LEAD_TAIL.match(text, close + 1))
            # subject words before it, then a lead sentence's "(…) foi" over a citation's "(O Globo, 2007)"
            hits = 2 * len(subject & set(normalize_pt(before).split())) + lead
            if hits < 2 or close < 0 or (best and hits <= best[0]):
                continue
            sides = _DASH.split(text[m.start() + 1 : close], maxsplit=1)
            if not any(True for _ in years(sides[0])):
                continue  # not a life span
            side = sides[1] if death and len(sides) > 1 else "" if death else sides[0]
            if not side and not lead:
                continue  # only a lead sentence's "(…) é/foi …" says that the subject is alive
            spans = list(years(side))[-1:] if kind == "year" else list(capitalised(side))[:1]
            if spans or not side:
                best = (hits, spans[0].text if spans else "")
    return best[1] if best else None


def _word_positions(text: str, subject: set[str]) -> list[int]:
    folded = fold(text)
    return [m.start() for m in re.finditer(r"\w+", folded) if normalize_pt(m.group(0)) in subject]


def nearest_span(kind: str | None, subject: set[str], passages: Sequence[str]) -> str:
    """The span of ``kind`` nearest a subject word (a span that is itself subject words is skipped)."""
    best: tuple[float, int, int] | None = None
    answer = ""
    for p_index, text in enumerate(passages):
        anchors = _word_positions(text, subject)
        for span in _typed(kind, text):
            words = set(normalize_pt(span.text).split()) - PT_FUNCTION_WORDS
            if kind not in ("year", "number") and words and (words <= subject or len(words & subject) > 1):
                continue  # the subject's own name ("August Georg Gailit"), or a title naming the subject
            dist = min((abs(span.start - a) for a in anchors), default=float("inf"))
            key = (dist, p_index, span.start)
            if best is None or key < best:
                best, answer = key, span.text
    return answer


def pick_span(row: Mapping[str, Any], passages: Sequence[str]) -> str:
    """The best-typed span for the question ``row`` in ``passages`` ("" when there is none)."""
    question = str(row.get("question") or "")
    kind = kind_of_row(row)
    subject = subject_words(question)
    relation = _relation(row) or ""
    death = relation.startswith("death") or (not relation and bool(DEATH_WORDS.search(fold(question))))
    if kind in ("year", "place"):
        found = lead_parenthesis(kind, death, subject, passages)
        if found is not None:
            return found
    return nearest_span(kind, subject, passages)
