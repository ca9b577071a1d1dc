"""Rule-based knowledge augmentation: texts that restate one page's facts (:mod:`bench.training.augment`).

Every text states all of the page's facts as sentences with the page title as subject (the full name the
questions use, never a pronoun), and the kinds vary how (Allen-Zhu & Li, Physics of LMs 3.1: facts become
extractable when each is seen in several phrasings and orders):

* ``facts``: the fact sentences alone, in a seeded order, from one of several templates per relation;
* ``name_lead``: the lead with the title repeated as the subject of its sentences (pronouns and dropped
  subjects replaced), then the fact sentences;
* ``record``: a structured record (``Nascimento: 1912, Salvador``), the labels varied;
* ``permuted_lead``: ``Title:`` and the lead's sentences in a seeded order, then the fact sentences;
* ``facts_lead``: the fact sentences, then the original lead.

The lead's sentences are optional: they are added in order while the text fits ``max_length`` tokens.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.training.sft_views import split_sentences

Fits = Callable[[str], bool]  # does this text fit finetune.max_length tokens
T = TypeVar("T")


@dataclass(frozen=True)
class PageFacts:
    """One page: its title, its lead, and its facts (relation, answer) in a fixed relation order."""

    title: str
    lead: str
    facts: tuple[tuple[str, str], ...]


BIRTH = {  # (year, place) both known / year only / place only
    "both": (
        "{t} nasceu em {p}, em {y}.",
        "{t} nasceu em {y}, em {p}.",
        "O ano de nascimento de {t} é {y}, e o local de nascimento de {t} é {p}.",
        "Natural de {p}, {t} nasceu no ano de {y}.",
        "{t} nasceu no ano de {y}. O local de nascimento de {t} é {p}.",
        "Em {y} nasceu {t}, em {p}.",
    ),
    "year": ("{t} nasceu em {y}.", "O ano de nascimento de {t} é {y}.", "{t} nasceu no ano de {y}."),
    "place": ("{t} nasceu em {p}.", "O local de nascimento de {t} é {p}.", "{t} é natural de {p}."),
}
DEATH = {
    "both": (
        "{t} morreu em {p}, em {y}.",
        "{t} morreu em {y}, em {p}.",
        "O ano da morte de {t} é {y}, e o local da morte de {t} é {p}.",
        "{t} faleceu em {p} no ano de {y}.",
        "{t} morreu no ano de {y}. O local da morte de {t} é {p}.",
        "Em {y} morreu {t}, em {p}.",
    ),
    "year": ("{t} morreu em {y}.", "O ano da morte de {t} é {y}.", "{t} faleceu no ano de {y}."),
    "place": ("{t} morreu em {p}.", "O local da morte de {t} é {p}.", "{t} faleceu em {p}."),
}
STATE = (  # {e}: "estado de São Paulo", "estado da Bahia" (the lead's own preposition when it has one)
    "{t} é um município brasileiro do {e}.",
    "O município de {t} pertence ao {e}.",
    "O município de {t} fica no {e}, no Brasil.",
    "{a} é o estado a que pertence o município de {t}.",
)
OTHER = ("{t} — {label}: {a}.", "{label} de {t}: {a}.")
LABELS = (  # the record kind: (birth, death, state) labels
    ("Nascimento", "Morte", "Estado"),
    ("Nasceu", "Morreu", "Unidade federativa"),
    ("Data e local de nascimento", "Data e local da morte", "Estado brasileiro"),
)
PRONOUN = re.compile(r"^(?:Ele|Ela|Eles|Elas)\b\s*")
VERB = re.compile(  # a sentence opening on a verb (dropped subject): a common one, or a preterite (-ou, -eu,
    # -iu; "-se") followed by a lower-case word, which a name ("Bartolomeu Dias") is not
    r"^(?:(?:É|Foi|Era|Tem|Teve|Possui|Fica|Está|Esteve|Vive|Trabalha|Joga|Atua)\b"
    r"|(?!(?:Seu|Meu|Teu)\b)[A-ZÀ-Ý][a-zà-ÿ]*(?:ou|eu|iu)(?:-se)?(?=\s+[a-zà-ÿ0-9]))"
)
LEAD_NAME = re.compile(r"^(?P<name>[^(),;]{2,80}?)(?=\s*\(|,|\s+(?:é|foi|era)\s)")


def _pick(options: Sequence[T], variant: int) -> T:
    return options[variant % len(options)]


def _life(templates: dict[str, tuple[str, ...]], t: str, y: str, p: str, variant: int) -> str:
    which = "both" if y and p else "year" if y else "place"
    return _pick(templates[which], variant).format(t=t, y=y, p=p)


def _state_phrase(lead: str, state: str) -> str:
    m = re.search(r"estado\s+(d[aeo]s?)\s+" + re.escape(state), lead)
    return f"estado {m.group(1) if m else 'de'} {state}"


def statements(page: PageFacts, variant: int, rng: random.Random) -> list[str]:
    """One sentence per fact group (birth, death, state, any other relation), groups in ``rng``'s order."""
    facts, t = dict(page.facts), page.title
    out = []
    if facts.get("birth_year") or facts.get("birth_place"):
        out.append(_life(BIRTH, t, facts.get("birth_year", ""), facts.get("birth_place", ""), variant))
    if facts.get("death_year") or facts.get("death_place"):
        out.append(_life(DEATH, t, facts.get("death_year", ""), facts.get("death_place", ""), variant))
    if state := facts.get("municipality_state"):
        out.append(_pick(STATE, variant).format(t=t, a=state, e=_state_phrase(page.lead, state)))
    for rel, answer in page.facts:
        if rel not in ("birth_year", "birth_place", "death_year", "death_place", "municipality_state"):
            out.append(_pick(OTHER, variant).format(t=t, a=answer, label=rel.replace("_", " ")))
    rng.shuffle(out)
    return out


def record(page: PageFacts, variant: int) -> str:
    """``Title`` then one ``Label: value`` line per fact group."""
    facts = dict(page.facts)
    birth, death, state = _pick(LABELS, variant)
    lines = [page.title]
    for label, year, place in ((birth, "birth_year", "birth_place"), (death, "death_year", "death_place")):
        value = ", ".join(v for v in (facts.get(year), facts.get(place)) if v)
        if value:
            lines.append(f"{label}: {value}")
    if facts.get("municipality_state"):
        lines.append(f"{state}: {facts['municipality_state']}")
    known = {"birth_year", "birth_place", "death_year", "death_place", "municipality_state"}
    lines += [f"{rel.replace('_', ' ').capitalize()}: {a}" for rel, a in page.facts if rel not in known]
    return "\n".join(lines)


def name_sentences(title: str, sentences: Sequence[str]) -> list[str]:
    """The lead with the title as the subject: the opening name (when it shares a word with the title) and
    sentence-initial pronouns become the title, and a sentence opening on a verb gets the title before it."""
    words = {w.casefold() for w in re.findall(r"\w+", title) if len(w) > 2}
    out = []
    for i, sent in enumerate(sentences):
        m = LEAD_NAME.match(sent) if i == 0 else None
        name = m.group("name").strip() if m else ""
        if m and name != title and words & {w.casefold() for w in re.findall(r"\w+", name)}:
            sent = title + sent[m.end("name") :]
        elif PRONOUN.match(sent):
            sent = PRONOUN.sub(f"{title} ", sent, count=1)
        elif VERB.match(sent):
            sent = f"{title} {sent[0].lower()}{sent[1:]}"
        out.append(sent)
    return out


def _compose(head: Sequence[str], optional: Sequence[str], tail: Sequence[str], fits: Fits) -> str:
    """``head`` + as many of ``optional`` (in order) as fit + ``tail``, space-joined."""
    kept: list[str] = []
    for sent in optional:
        if fits(" ".join([*head, *kept, sent, *tail])):
            kept.append(sent)
    return " ".join([*head, *kept, *tail])


KINDS = ("facts", "name_lead", "record", "permuted_lead", "facts_lead")


def rule_text(page: PageFacts, i: int, seed: int, fits: Fits) -> str:
    """The ``i``-th augmented text of ``page``: kind ``KINDS[i % 5]``; its template variant moves on by one
    each time the kind comes round (offset by the kind, so the kinds of one round differ); orders from
    ``i`` and ``seed``."""
    rng = random.Random(f"{seed}:aug:{page.title}:{i}")
    variant = i // len(KINDS) + i % len(KINDS)
    facts = statements(page, variant, rng)
    lead = split_sentences(page.lead)
    kind = KINDS[i % len(KINDS)]
    if kind == "facts":
        return " ".join(facts)
    if kind == "name_lead":
        return _compose([], name_sentences(page.title, lead), facts, fits)
    if kind == "record":
        return record(page, variant)
    if kind == "permuted_lead":
        rng.shuffle(lead)
        return _compose([f"{page.title}:"], lead, facts, fits)
    return _compose(facts, lead, [], fits)


def rule_texts(page: PageFacts, n: int, seed: int, fits: Fits) -> list[str]:
    """``n`` distinct augmented texts of ``page`` (fewer only when its few facts allow fewer phrasings)."""
    out: list[str] = []
    seen: set[str] = set()
    for i in range(n * 2 * len(KINDS)):
        text = rule_text(page, i, seed, fits)
        key = " ".join(text.split()).casefold()
        if key not in seen:
            seen.add(key)
            out.append(text)
        if len(out) == n:
            break
    return out
