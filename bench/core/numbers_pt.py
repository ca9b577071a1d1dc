"""Portuguese number words → digits, for answer normalisation (``três`` → ``3``, ``cento e vinte`` → ``120``).

Works on accent-folded, lower-case tokens. A phrase is number words joined by ``e`` where each joined
part is smaller than the part before it (``vinte e cinco``, ``mil e quinhentos``), so a list such as
``dois e três`` stays two numbers. ``um``/``uma`` alone are left as they are (they are usually
articles); inside a phrase (``vinte e um``, ``um mil``) they count as 1.
"""

from __future__ import annotations

from collections.abc import Sequence

UNITS = {
    "zero": 0, "um": 1, "uma": 1, "dois": 2, "duas": 2, "tres": 3, "quatro": 4, "cinco": 5, "seis": 6,
    "sete": 7, "oito": 8, "nove": 9, "dez": 10, "onze": 11, "doze": 12, "treze": 13, "catorze": 14,
    "quatorze": 14, "quinze": 15, "dezesseis": 16, "dezasseis": 16, "dezessete": 17, "dezassete": 17,
    "dezoito": 18, "dezenove": 19, "dezanove": 19, "vinte": 20, "trinta": 30, "quarenta": 40,
    "cinquenta": 50, "sessenta": 60, "setenta": 70, "oitenta": 80, "noventa": 90, "cem": 100,
    "cento": 100, "duzentos": 200, "duzentas": 200, "trezentos": 300, "trezentas": 300,
    "quatrocentos": 400, "quatrocentas": 400, "quinhentos": 500, "quinhentas": 500, "seiscentos": 600,
    "seiscentas": 600, "setecentos": 700, "setecentas": 700, "oitocentos": 800, "oitocentas": 800,
    "novecentos": 900, "novecentas": 900,
}  # fmt: skip
THOUSAND = "mil"


def _phrase(tokens: Sequence[str], start: int) -> tuple[int, int] | None:
    """(value, end) of the longest number phrase starting at ``start``; None when there is none."""
    total, group, last, i = 0, 0, None, start
    while i < len(tokens):
        tok = tokens[i]
        if tok == THOUSAND:
            total += (group or 1) * 1000
            group, last, i = 0, 1000, i + 1
        elif tok in UNITS and (last is None or UNITS[tok] < last):
            group += UNITS[tok]
            last, i = UNITS[tok], i + 1
        else:
            break
        # Continue over "e" only when the next word is a smaller number part.
        if i + 1 < len(tokens) and tokens[i] == "e":
            nxt = tokens[i + 1]
            if (nxt in UNITS and last is not None and UNITS[nxt] < last) or (nxt == THOUSAND and not total):
                i += 1
                continue
        if i < len(tokens) and tokens[i] in UNITS and last is not None and UNITS[tokens[i]] < last:
            continue  # "duzentos mil", "cento vinte" are rare but unambiguous
        if i < len(tokens) and tokens[i] == THOUSAND and not total:
            continue
        break
    if i == start:
        return None
    return total + group, i


def words_to_digits(tokens: Sequence[str]) -> list[str]:
    """Replace every number-word phrase by its digits; lone ``um``/``uma`` are kept as words."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        found = _phrase(tokens, i)
        if found is None or (found[1] == i + 1 and tokens[i] in ("um", "uma")):
            out.append(tokens[i])
            i += 1
            continue
        value, i = found
        out.append(str(value))
    return out
