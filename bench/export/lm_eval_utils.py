"""lm-evaluation-harness hooks of a task folder written by ``python -m bench export`` (copied there as
``utils.py``; this file must not import ``bench``: the folder works without the harness installed).

The questions are read from ``questions.jsonl`` beside this file, and each answer is scored with
ptwiki-bench's own metrics (``ptwiki_metrics.py``, a copy of ``bench/core/metrics.py`` and its number
parser): Portuguese normalisation, exact match, token F1, question-stripped F1 and containment, with the
bench's place rule for questions whose ``place`` field is true (a gold place's qualifier is optional and an
answer's first comma-separated part may name it: ``bench.eval.scoring.score_answer``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import ptwiki_metrics as m  # noqa: E402  (beside this file)

QUESTIONS = HERE / "questions.jsonl"


def load_questions(**kwargs: Any) -> Any:
    """The task's documents: every row of questions.jsonl as the ``test`` split (kwargs: lm-eval metadata)."""
    import datasets

    return datasets.DatasetDict({"test": datasets.load_dataset("json", data_files=str(QUESTIONS))["train"]})


def load_context_questions(**kwargs: Any) -> Any:
    """The documents of the with-context task: the questions that carry a gold ``context``."""
    docs = load_questions(**kwargs)
    return docs.filter(lambda d: bool(d.get("context")))


def first_answer(doc: dict[str, Any]) -> str:
    return str(doc["answers"][0])


def score(prediction: str, doc: dict[str, Any]) -> dict[str, float]:
    """EM, token F1, question-stripped F1 and containment of one prediction, as the bench scores them."""
    answers = [str(a) for a in doc["answers"]]
    if doc.get("place"):
        answers = m.place_golds(answers)
        prediction = m.place_head(prediction, answers)
    return {
        "exact_match": m.exact_match(prediction, answers),
        "f1": m.token_f1(prediction, answers),
        "f1_qstripped": m.f1_qstripped(prediction, answers, str(doc["question"])),
        "contains": m.contains(prediction, answers),
    }


def first_line(text: str) -> str:
    """The answer a generation gives, as the bench's reader takes it (``bench.core.prompts.first_line``): the
    first non-empty line, without a leading "Resposta:" cue."""
    for line in str(text or "").splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("Resposta:").strip()
    return ""


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """lm-eval's per-document metric hook: ``results`` holds the one generation of the document."""
    return score(first_line(results[0] if results else ""), doc)
