"""The fuzzy leakage guard: reworded twins and near-copy pages are dropped, the runner re-checks adapters."""

from __future__ import annotations

import pytest

from bench.config import BenchError, FinetuneConfig
from bench.questions import leakage

FT = FinetuneConfig()
PAGE = (
    "O colegiado de curso é composto por três docentes do curso e um representante discente, eleitos pelos "
    "seus pares, com mandato de dois anos, sendo permitida uma recondução por igual período de tempo."
)
EVAL = [
    {
        "id": "dev1",
        "question": "Quantos docentes compõem o colegiado de curso?",
        "answers": ["três"],
        "context": PAGE,
    },
    {"id": "dev2", "question": "Qual é a capital do Brasil?", "answers": ["Brasília"], "context": "Outra."},
]


def test_reworded_twin_with_the_same_answer_is_caught() -> None:
    train = [
        {"id": "t1", "question": "O colegiado de curso é composto por quantos docentes?", "answers": ["3"]},
        # same words, different answer: a different question about the same topic, kept
        {"id": "t2", "question": "Quantos discentes compõem o colegiado de curso?", "answers": ["um"]},
        {"id": "t3", "question": "Quem foi Tiradentes?", "answers": ["um dentista"]},
    ]
    twins = leakage.question_twins(train, EVAL, FT.leak_question_overlap, FT.leak_answer_f1)
    assert twins == {"t1": "dev1"}
    # stricter thresholds let it through: the thresholds are what decides
    assert leakage.question_twins(train, EVAL, 0.95, FT.leak_answer_f1) == {}


def test_document_twin_is_caught_by_shingle_overlap() -> None:
    near_copy = PAGE.replace("dois anos", "2 anos").replace("sendo permitida", "permitida")
    train = [
        {"id": "t1", "question": "Qual o mandato?", "answers": ["2 anos"], "context": near_copy},
        {"id": "t2", "question": "x?", "answers": ["y"], "context": "Um texto totalmente diferente " * 5},
    ]
    assert leakage.document_twins(train, EVAL, FT.leak_doc_ngram, FT.leak_doc_overlap) == {"t1": "dev1"}
    kept, drops = leakage.filter_training(train, EVAL, FT)
    assert [r["id"] for r in kept] == ["t2"]
    assert drops == {"eval_question_twin": 0, "eval_document_twin": 1}


def test_runner_recheck_refuses_an_adapter_that_saw_evaluation_questions() -> None:
    clean = [leakage.training_record({"id": "t9", "question": "Quem foi Tiradentes?", "answers": ["x"]})]
    leakage.check_adapter(clean, EVAL, FT)  # no error
    for bad in (
        {"id": "dev1", "question": "outra coisa", "answers": ["z"]},  # same id
        {"id": "t1", "question": "qual é a capital do brasil?", "answers": ["z"]},  # same text
        {"id": "t2", "question": "O colegiado de curso é composto por quantos docentes?", "answers": ["3"]},
        {"id": "t3", "question": "Qual o mandato?", "answers": ["2"], "context": PAGE},  # same page
    ):
        with pytest.raises(BenchError, match="leakage"):
            leakage.check_adapter([leakage.training_record(bad)], EVAL, FT)
