"""No-model reference answers. A model variant is only interesting if it beats these on the same questions.

* ``echo``: the question itself (what F1 gives for free when an answer restates the question);
* ``picker_oracle`` / ``picker_rag``: the sentence of the passages (gold paragraph / retrieved chunks, in
  order) that shares the most content words with the question; ties go to the earlier sentence;
* ``span_oracle`` / ``span_rag``: the best span of the type the question asks for (year, place, state,
  number, person: :mod:`bench.eval.spans`) in the same passages, nearest the question's words.

Each takes the question row (``question``, and ``relation`` when the question file has one) and the passage
texts the reader would see.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench.core.metrics import content_words
from bench.eval.spans import pick_span

# A sentence ends at . ! ? ; or a line break followed by white space (abbreviations are rare in answers).
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


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


def echo(row: Mapping[str, Any], passages: Sequence[str]) -> str:
    return str(row["question"]).strip()


def picker(row: Mapping[str, Any], passages: Sequence[str]) -> str:
    return pick_sentence(str(row["question"]), passages)


Baseline = Callable[[Mapping[str, Any], Sequence[str]], str]  # (question row, passage texts) -> answer
BASELINES: dict[str, Baseline] = {
    "echo": echo,
    "picker_oracle": picker,
    "picker_rag": picker,
    "span_oracle": pick_span,
    "span_rag": pick_span,
}
