"""No-model reference answers. A model variant is only interesting if it beats these on the same questions.

* ``echo``: the question itself (what F1 gives for free when an answer restates the question);
* ``picker_oracle`` / ``picker_rag``: the sentence of the passages (gold paragraph / retrieved chunks, in
  order) that shares the most content words with the question; ties go to the earlier sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bench.eval.metrics import PT_FUNCTION_WORDS, normalize_pt

# A sentence ends at . ! ? ; or a line break followed by white space (abbreviations are rare in answers).
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def content_words(text: str) -> set[str]:
    return {t for t in normalize_pt(text).split() if t not in PT_FUNCTION_WORDS}


def pick_sentence(question: str, passages: Sequence[str]) -> str:
    """The passage sentence with the most question content words in common ("" when there is no passage)."""
    wanted = content_words(question)
    best, best_score = "", -1
    for passage in passages:
        for sentence in sentences(passage):
            score = len(wanted & content_words(sentence))
            if score > best_score:
                best, best_score = sentence, score
    return best


def echo(question: str, passages: Sequence[str]) -> str:
    return question.strip()


BASELINES: dict[str, Callable[[str, Sequence[str]], str]] = {
    "echo": echo,
    "picker_oracle": pick_sentence,
    "picker_rag": pick_sentence,
}
