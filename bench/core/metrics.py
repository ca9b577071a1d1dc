"""Pure per-answer metric functions: Portuguese normalisation (numbers included), EM, token F1,
question-stripped F1, containment, retrieval metrics, answer language. Aggregation lives in
:mod:`bench.eval.scoring`, statistics in :mod:`bench.core.stats`. Definitions: docs/harness.md."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.core.numbers_pt import words_to_digits

# "um"/"uma" are articles too, but an answer that is only "um"/"uma" is the number 1 (see normalize_pt).
PT_ARTICLES = frozenset({"o", "a", "os", "as", "um", "uma", "uns", "umas"})
# Function words that carry no answer content: question-stripped F1 ignores them on both sides.
PT_FUNCTION_WORDS = frozenset(
    {"de", "do", "da", "dos", "das", "em", "no", "na", "nos", "nas", "e", "ou", "por", "pelo", "pela",
     "pelos", "pelas", "para", "com", "que", "se", "ao", "aos", "num", "numa", "sua", "seu", "suas", "seus"}
)  # fmt: skip
_PUNCT = (set(string.punctuation) | set("«»“”‘’–—…¿¡·")) - {"."}
_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3})((?:\.\d{3})+)(?![\d.,]?\d)")
# "7 517" (a space, no-break or thin space between groups of three) is 7517 like "7.517"; a year after a
# day ("12 1912") never matches: the groups after the first have exactly three digits.
_THOUSANDS_SPACE = re.compile(r"(?<![\d.,])(\d{1,3})((?:[ \u00a0\u202f]\d{3})+)(?![\d.,]?\d)")
# "75%", "75 %" and "setenta e cinco por cento" are one token "75%" (so "cento" is not 100 here).
_PERCENT = re.compile(r"\s*%|\bpor\s+cento\b")
PERCENT_WORD = "porcento"
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")
_LONE_DOT = re.compile(r"(?<!\d)\.|\.(?!\d)")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def normalize_pt(text: str) -> str:
    """Lower-case, fold accents, unify numbers, drop punctuation and articles, collapse white space.

    Numbers: ``1.000`` and ``1 000`` → ``1000`` (Portuguese thousands), ``3,5`` → ``3.5``, ``75 %`` and
    ``setenta e cinco por cento`` → ``75%``, number words up to the
    hundreds of thousands → digits (``três`` → ``3``, ``vinte e cinco`` → ``25``, ``mil e quinhentos``
    → ``1500``). Articles (``o``, ``a``, ``um``, ``uma``, …) are dropped, except that an answer that is
    only ``um``/``uma`` is the number ``1`` rather than empty.
    """
    return " ".join(normalized_tokens(text))


def content_words(text: str) -> set[str]:
    """The normalised words of ``text`` that are not Portuguese function words."""
    return {t for t in normalize_pt(text).split() if t not in PT_FUNCTION_WORDS}


def normalized_tokens(text: str, keep_articles: bool = False) -> list[str]:
    """The tokens of :func:`normalize_pt`; ``keep_articles`` keeps ``o``/``a``/``um``/``uma``/… as words."""
    text = _fold(text)
    text = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(".", ""), text)
    text = _THOUSANDS_SPACE.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), text)
    text = _PERCENT.sub(f" {PERCENT_WORD} ", text)
    text = _DECIMAL_COMMA.sub(".", text)
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    tokens = _LONE_DOT.sub(" ", text).split()
    if len(tokens) == 1 and tokens[0] in ("um", "uma") and not keep_articles:
        return ["1"]
    return _join_percent([t for t in words_to_digits(tokens) if keep_articles or t not in PT_ARTICLES])


def _join_percent(tokens: list[str]) -> list[str]:
    """``75 porcento`` → ``75%``; a lone ``por cento`` stays the word ``porcento``."""
    out: list[str] = []
    for tok in tokens:
        if tok == PERCENT_WORD and out and out[-1].replace(".", "", 1).isdigit():
            out[-1] += "%"
        else:
            out.append(tok)
    return out


def _tokens(text: str) -> list[str]:
    return normalize_pt(text).split()


def usable_answers(answers: Sequence[str]) -> list[str]:
    """Gold answers that survive normalisation (an answer that normalises to empty can never be matched)."""
    return [a for a in answers if normalize_pt(a)]


_PLACE_PARTS = re.compile(r"\s*[,(;]\s*")


MAX_PLACE_WORDS = 6


def _is_place_name(gold: str) -> bool:
    """A gold answer that reads as a place name: capitalised, a few words (not "na secretaria acadêmica")."""
    return gold.strip()[:1].isupper() and len(gold.split()) <= MAX_PLACE_WORDS


def place_golds(answers: Sequence[str]) -> list[str]:
    """A place question's gold answers plus the head of each gold place that carries a qualifier ("Berkeley
    (Califórnia)" → also "Berkeley"; "Palmeiras de Goiás (GO)" → also "Palmeiras de Goiás"): the qualifier
    disambiguates the same place, so the bare name is that place too. A head that is not itself a place name
    (lower case, too long) is not added."""
    out = list(answers)
    for gold in answers:
        head = _PLACE_PARTS.split(gold.strip(), maxsplit=1)[0]
        qualified = head and head != gold.strip() and head not in out
        if qualified and _is_place_name(gold) and _is_place_name(head):
            out.append(head)
    return out


def place_head(prediction: str, answers: Sequence[str]) -> str:
    """For a place question: the prediction's first comma- or parenthesis-separated part when that part is
    a gold place name and the rest names no date or number ("Olinda, Pernambuco" → "Olinda" for gold
    "Olinda"); otherwise the prediction unchanged, so another place ("Recife, Pernambuco") or a place with a
    date ("Olinda, 31 de outubro de 1952") stays wrong."""
    parts = _PLACE_PARTS.split(prediction.strip(), maxsplit=1)
    if len(parts) < 2 or not parts[0] or any(ch.isdigit() for ch in parts[1]):
        return prediction
    norm = normalize_pt(parts[0])
    if norm and any(norm == normalize_pt(a) for a in answers if _is_place_name(a)):
        return parts[0]
    return prediction


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    pred = normalize_pt(prediction)
    return float(any(pred == normalize_pt(a) for a in usable_answers(answers)))


def _f1(pred: Sequence[str], gold: Sequence[str]) -> float:
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD-style token F1 after Portuguese normalisation, max over gold answers (0 for an empty answer)."""
    pred = _tokens(prediction)
    return max((_f1(pred, _tokens(a)) for a in usable_answers(answers)), default=0.0)


def f1_qstripped(prediction: str, answers: Sequence[str], question: str) -> float:
    """Token F1 with the question's words and function words removed from answer and gold alike.

    Repeating the question earns nothing: "O semestre é contado em 2021." for gold "ingresso na UFMS"
    keeps only ``semestre contado 2021`` vs ``ingresso ufms`` (F1 0). A question word that is also a word
    of the gold answer (a subject named like its birthplace: "Ribeiro Gonçalves" for "João Ribeiro Dias")
    is kept on both sides, but only counts once the prediction shares a gold word that is not in the
    question, so restating the question still earns 0. A gold answer made only of question or function
    words is scored by exact match.
    """
    question_words = set(_tokens(question))
    pred_all = _tokens(prediction)
    strict = question_words | PT_FUNCTION_WORDS
    pred_new = {t for t in pred_all if t not in strict}
    best = 0.0
    for answer in usable_answers(answers):
        gold_all = _tokens(answer)
        gold_new = {t for t in gold_all if t not in strict}
        if not gold_new:
            best = max(best, float(pred_all == gold_all))
        elif pred_new & gold_new:
            drop = (question_words - set(gold_all)) | PT_FUNCTION_WORDS
            pred = [t for t in pred_all if t not in drop]
            best = max(best, _f1(pred, [t for t in gold_all if t not in drop]))
    return best


_ONE = frozenset({"1", "um", "uma"})


def contains(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when a normalised gold answer appears in the normalised prediction (word-aligned).

    A gold that is only "um"/"uma" (the number 1) is found in "apenas uma": the article rule that drops
    "uma" from the prediction does not drop a gold answer that is that word.
    """
    pred = f" {normalize_pt(prediction)} "
    pred_words = set(normalized_tokens(prediction, keep_articles=True))
    for answer in usable_answers(answers):
        gold = normalize_pt(answer)
        if f" {gold} " in pred or (gold == "1" and pred_words & _ONE):
            return 1.0
    return 0.0


def recall_at_k(retrieved_titles: Sequence[str], gold_title: str, k: int) -> float:
    return float(gold_title in list(retrieved_titles)[:k])


def answer_in_context_at_k(passages: Sequence[str], answers: Sequence[str], k: int) -> float:
    """1.0 when a gold answer lies inside one of the first ``k`` passages (each checked on its own)."""
    return float(any(contains(p, answers) for p in list(passages)[:k]))


def reciprocal_rank(retrieved_titles: Sequence[str], gold_title: str) -> float:
    for rank, title in enumerate(retrieved_titles, 1):
        if title == gold_title:
            return 1.0 / rank
    return 0.0


# --- answer language -------------------------------------------------------------------------------------

LANGUAGES = ("pt", "en", "es", "fr", "it", "de")  # the classifier's choices; all but pt/en count as "other"
UNDETERMINED, OTHER = "und", "other"
MIN_LANG_WORDS = 4
MAX_FOREIGN_SCRIPT = 0.3  # share of letters outside the Latin script above which an answer is "other"
# Below this classifier probability the language is undetermined: 4-word Portuguese phrases such as
# "o colegiado de curso" come out as Spanish at p ≈ 0.55, while real sentences score > 0.99.
MIN_LANG_CONFIDENCE = 0.9
_identifier: Any = None


def _lang_identifier() -> Any:
    """A private py3langid identifier restricted to LANGUAGES (the module-level one is left untouched)."""
    global _identifier
    if _identifier is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        ident.set_languages(list(LANGUAGES))
        _identifier = ident
    return _identifier


NAME_CONNECTORS = frozenset(
    {"de", "da", "do", "das", "dos", "e", "del", "la", "y", "of", "the", "and", "von", "van"}
)


def _is_name_or_number(word: str) -> bool:
    return any(ch.isdigit() for ch in word) or word[:1].isupper() or word in NAME_CONNECTORS


def _foreign_script_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(not unicodedata.name(ch, "").startswith("LATIN") for ch in letters) / len(letters)


def answer_language(text: str, min_words: int = MIN_LANG_WORDS) -> str:
    """``"pt"``, ``"en"``, ``"other"`` (another language or script) or ``"und"`` (undetermined).

    Other: mostly non-Latin letters (Chinese, Cyrillic, …) whatever the length, or a Latin-script text the
    classifier assigns to es/fr/it/de. Undetermined: fewer than ``min_words`` words, every word a number,
    capitalised, or a name connector such as "de"/"of" (names, titles, dates), or a classifier probability
    under ``MIN_LANG_CONFIDENCE``: no clear signal there.
    """
    if _foreign_script_share(text) > MAX_FOREIGN_SCRIPT:
        return OTHER
    words = ["".join(ch for ch in w if ch not in _PUNCT and ch != ".") for w in text.split()]
    words = [w for w in words if w]
    if len(words) < min_words or all(_is_name_or_number(w) for w in words):
        return UNDETERMINED
    lang, confidence = _lang_identifier().classify(text)
    if confidence < MIN_LANG_CONFIDENCE:
        return UNDETERMINED
    return str(lang) if lang in ("pt", "en") else OTHER
