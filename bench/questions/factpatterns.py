"""Lead-sentence patterns and Portuguese question templates for the fact probes
(``bench.questions.factprobe``).

Each extractor reads the first paragraph of a cleaned article and returns :class:`Fact` objects or
:class:`Drop` records (a fact the pattern found but validation refused, with a reason). Patterns:

* biography: ``Nome (Local, dd de mês de aaaa — Local, dd de mês de aaaa) …`` → ``birth_place``,
  ``birth_year``, ``death_place``, ``death_year`` (the part after the dash is optional: living people);
* municipality: ``X é um município [brasileiro] … do estado de Y`` or ``X, município no estado de Y`` →
  ``municipality_state`` (Y must be one of the 26 Brazilian states, so Danish or Angolan municipalities fail).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

RELATIONS = ("birth_year", "birth_place", "death_year", "death_place", "municipality_state")

# template name → Portuguese question ({s} = the subject: the article title)
TEMPLATES: dict[str, dict[str, str]] = {
    "birth_year": {
        "em_que_ano": "Em que ano nasceu {s}?",
        "ano_de_nascimento": "Qual é o ano de nascimento de {s}?",
        "nasceu_em_que_ano": "{s} nasceu em que ano?",
    },
    "birth_place": {
        "onde": "Onde nasceu {s}?",
        "local_de_nascimento": "Qual é o local de nascimento de {s}?",
        "em_que_localidade": "Em que localidade nasceu {s}?",
    },
    "death_year": {
        "em_que_ano": "Em que ano morreu {s}?",
        "ano_da_morte": "Qual é o ano da morte de {s}?",
        "morreu_em_que_ano": "{s} morreu em que ano?",
    },
    "death_place": {
        "onde": "Onde morreu {s}?",
        "local_da_morte": "Qual é o local da morte de {s}?",
        "em_que_localidade": "Em que localidade morreu {s}?",
    },
    "municipality_state": {
        "a_que_estado": "A que estado pertence o município de {s}?",
        "em_que_estado": "Em que estado brasileiro fica o município de {s}?",
        "de_que_estado": "{s} é um município de que estado do Brasil?",
    },
}

STATES = (  # the 26 states; "Mato Grosso do Sul" before "Mato Grosso" (prefix matching below)
    "Acre",
    "Alagoas",
    "Amapá",
    "Amazonas",
    "Bahia",
    "Ceará",
    "Espírito Santo",
    "Goiás",
    "Maranhão",
    "Mato Grosso do Sul",
    "Mato Grosso",
    "Minas Gerais",
    "Pará",
    "Paraíba",
    "Paraná",
    "Pernambuco",
    "Piauí",
    "Rio de Janeiro",
    "Rio Grande do Norte",
    "Rio Grande do Sul",
    "Rondônia",
    "Roraima",
    "Santa Catarina",
    "São Paulo",
    "Sergipe",
    "Tocantins",
)

MONTHS = "janeiro|fevereiro|março|abril|maio|junho|julho|agosto|setembro|outubro|novembro|dezembro"
MAX_YEAR = 2025
# The name before the parenthesis: starts upper-case, no digits, no sentence verb, at most 150 characters.
_BIO_HEAD = re.compile(r"^(?P<name>[A-ZÀ-Ý][^()\n\d]{1,149}?)\s*\(")
_NAME_VERB = re.compile(r"\s(?:é|foi|era|são|foram)\s")
_BIO_TAIL = re.compile(r"^\s*,?\s*(?:é|foi|era)\b")  # "Nome (…) foi um escritor"
_PARTS = re.compile(r"\s*[—–]\s*|\s+-\s+")
_AGE = re.compile(r"\s*\(\d{1,3} anos\)\s*$")  # "— Paris, 16 de agosto de 1900 (54 anos)"
_LIFESPAN = re.compile(rf"\b(?:{MONTHS})\s+de\s+\d{{3,4}}\b|[,;]\s*\d{{3,4}}\s*$|\bnascid[oa]\b|^n\.", re.I)
# "(1525 — 1582)", "(c. 1495 — 1548)": a life span only with the dash; "c." then fails the date parse
_BARE_YEAR = re.compile(r"^\s*(?:(?:c|ca)\.|circa|cerca de)?\s*\d{3,4}\s*$")
_ARTICLE = re.compile(r"^(?:O|A|Os|As)\s")  # "A Guerra Latina (340–338 a.C.)": not a person
_BC = re.compile(r"\b(?:a\.\s?C\.?|AC)\b")
_BORN = r"(?:(?:nascid[oa]|nasceu|falecid[oa]|mort[oa]|morreu)\s+(?:em\s+)?|(?:n\.|m\.|f\.|†)\s*)?"
_DAY_MONTH = rf"(?:(?P<day>\d{{1,2}})º?\s+(?:de\s+)?)?(?:(?:{MONTHS})\s+de\s+)?(?P<year>\d{{3,4}})"
_DATE = re.compile(rf"^{_BORN}(?:(?P<place>[^\d]+?)[,;]\s*{_BORN})?{_DAY_MONTH}$", re.I)
_DATE_FIRST = re.compile(rf"^{_BORN}{_DAY_MONTH},?\s+(?:em\s+)?(?P<place>[^\d]+)$", re.I)  # "1977, Hand"
_YEAR = re.compile(r"\b\d{3,4}\b")
_MUNI = re.compile(  # "X é um município brasileiro do estado de Y", "X, município no estado do Y (Brasil)"
    r"^(?P<name>[^()\n.,]{2,80}?)(?:\s+é\s+um|,)\s+município\s+(?:brasileiro\s+)?(?:[^.;()\n]{0,60}?\s)?"
    r"(?:n?o\s+)?[Ee]stado\s+(?:de|do|da)\s+(?P<state>[^.,;()\n]+)"
)
# Characters that never belong in a place or state name: wiki/HTML markup and IPA transcription residue.
_RESIDUE = re.compile(r"[\[\]{}|=<>;:/\\*#_~ˈˌːˑʰʲʷɐɑɒɔəɛɜɪʊʌʃʒŋθðɾʁχɣɲʎɫ]")


@dataclass(frozen=True)
class Fact:
    relation: str
    answers: tuple[str, ...]  # canonical answer first, then shorter variants
    context: str  # the lead sentence the fact came from
    subject: str = ""  # how the lead names its subject ("José Maria de Eça de Queirós")


@dataclass(frozen=True)
class Drop:
    relation: str
    reason: str
    detail: str


def fold(text: str) -> str:
    """Lower-case, accents removed, whitespace collapsed: for comparing names."""
    decomposed = unicodedata.normalize("NFD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def lead_paragraph(text: str) -> str:
    return text.strip().split("\n\n", 1)[0].strip()


def sentence_end(text: str, start: int) -> int:
    """Index just past the first '.' at parenthesis depth 0 followed by a space or the end, from ``start``."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == "." and depth == 0 and (i + 1 == len(text) or text[i + 1].isspace()):
            return i + 1
    return len(text)


def _closing_paren(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _latin(c: str) -> bool:
    return ord(c) < 0x250 or 0x1E00 <= ord(c) <= 0x1EFF


def place_answers(place: str) -> tuple[str, ...] | str:
    """Answer variants of a place ("Brodowski, São Paulo" → that and "Brodowski"), or a drop reason.

    ``bad_place``: not capitalised, digits, non-Latin script, over 60 characters or over 3 comma parts.
    """
    place = place.strip()
    if _RESIDUE.search(place):
        return "markup_or_ipa"
    parts = [p.strip() for p in place.split(",")]
    if (
        not place[:1].isupper()
        or any(c.isalpha() and not _latin(c) for c in place)
        or any(ch.isdigit() for ch in place)
        or len(place) > 60
        or len(parts) > 3
        or not all(parts)
    ):
        return "bad_place"
    return (place, parts[0]) if len(parts) > 1 else (place,)


def _date_facts(part: str, kind: str, context: str) -> list[Fact | Drop]:
    """Facts of one side of a biography parenthesis (``kind`` is "birth" or "death")."""
    part = _AGE.sub("", part).strip()
    m = _DATE.match(part) or _DATE_FIRST.match(part)
    if not m:
        reason = "unparsed_date" if _YEAR.search(part) else "no_date"
        return [Drop(f"{kind}_year", reason, part)] if reason == "unparsed_date" else []
    out: list[Fact | Drop] = []
    year = m["year"]
    if not 100 <= int(year) <= MAX_YEAR:
        out.append(Drop(f"{kind}_year", "implausible_year", year))
    else:
        out.append(Fact(f"{kind}_year", (year,), context))
    if m["place"]:
        answers = place_answers(m["place"])
        if isinstance(answers, str):
            out.append(Drop(f"{kind}_place", answers, m["place"]))
        else:
            out.append(Fact(f"{kind}_place", answers, context))
    return out


def biography_facts(lead: str) -> list[Fact | Drop]:
    """Birth/death year and place from ``Nome (Local, data — Local, data)``; [] when the lead is not one."""
    head = _BIO_HEAD.match(lead)
    if not head or _NAME_VERB.search(head["name"]) or _ARTICLE.match(head["name"]):
        return []
    open_at = head.end() - 1
    close = _closing_paren(lead, open_at)
    if close < 0 or not _BIO_TAIL.match(lead[close + 1 :]):
        return []
    paren = lead[open_at + 1 : close]
    if _BC.search(paren) and _YEAR.search(paren):
        return [Drop("birth_year", "unparsed_date", paren)]
    sides = _PARTS.split(paren, maxsplit=1)
    if not (_LIFESPAN.search(sides[0]) or (len(sides) > 1 and _BARE_YEAR.match(sides[0]))):
        return []  # a gloss, a pronunciation, a film's year or a catalogue number, not a life span
    context = lead[: sentence_end(lead, close + 1)].strip()
    out = _date_facts(sides[0], "birth", context)
    if len(sides) > 1:
        out += _date_facts(sides[1], "death", context)
    years = {
        f.relation: int(f.answers[0]) for f in out if isinstance(f, Fact) and f.relation.endswith("year")
    }
    if years.get("death_year", MAX_YEAR) < years.get("birth_year", 0):
        return [Drop(f.relation, "implausible_year", paren) if isinstance(f, Fact) else f for f in out]
    return [replace(f, subject=head["name"].strip()) if isinstance(f, Fact) else f for f in out]


def municipality_facts(lead: str) -> list[Fact | Drop]:
    """``municipality_state`` from ``X é um município brasileiro do estado de Y``."""
    m = _MUNI.match(lead)
    if not m or not m["name"][:1].isupper() or _NAME_VERB.search(m["name"]) or _ARTICLE.match(m["name"]):
        return []  # "Esta é a lista de bairros de Niterói, município do estado do Rio de Janeiro."
    raw = m["state"].strip()
    context = lead[: sentence_end(lead, m.start("state"))].strip()
    if _RESIDUE.search(raw):
        return [Drop("municipality_state", "markup_or_ipa", raw)]
    folded = fold(raw)
    for state in STATES:  # longest names first where one is a prefix of another (Mato Grosso do Sul)
        f = fold(state)
        if folded == f or folded.startswith(f + " "):
            return [Fact("municipality_state", (state,), context, m["name"].strip())]
    return [Drop("municipality_state", "unknown_state", raw)]


# A piped wiki link: [[Belém (Pará)|Belém]] (target, shown text); files/categories (a ':') are not places.
_PIPED_LINK = re.compile(r"\[\[\s*([^\[\]|#:]+?)\s*(?:#[^\[\]|]*)?\|\s*([^\[\]|]+?)\s*\]\]")
LEAD_WIKITEXT_CHARS = (
    12000  # the links of the lead (after an infobox): the facts come from its first sentence
)


def link_aliases(wikitext: str) -> dict[str, tuple[str, ...]]:
    """Shown text → the other names of its link target in the page's lead wikitext:
    ``[[Belém (Pará)|Belém]]`` → ``{"Belém": ("Belém (Pará)",)}``; a target that differs only by a
    disambiguation in brackets is kept whole (the answer a reader may copy from a link or a title)."""
    out: dict[str, tuple[str, ...]] = {}
    for m in _PIPED_LINK.finditer(wikitext[:LEAD_WIKITEXT_CHARS]):
        target, shown = m[1].strip(), m[2].strip()
        if target and fold(target) != fold(shown) and not _RESIDUE.search(target):
            out.setdefault(shown, tuple(dict.fromkeys((*out.get(shown, ()), target))))
    return out


PLACE_RELATIONS = ("birth_place", "death_place", "municipality_state")


def add_aliases(fact: Fact, links: dict[str, tuple[str, ...]]) -> Fact:
    """A place fact with its link targets as further gold answers (after the canonical and short forms)."""
    if fact.relation not in PLACE_RELATIONS or not links:
        return fact
    extra = [alias for answer in fact.answers for alias in links.get(answer, ())]
    answers = tuple(dict.fromkeys((*fact.answers, *extra)))
    return replace(fact, answers=answers) if answers != fact.answers else fact


def extract(text: str) -> list[Fact | Drop]:
    """Every fact and drop the patterns find in an article's lead paragraph."""
    lead = lead_paragraph(text)
    return biography_facts(lead) + municipality_facts(lead)
