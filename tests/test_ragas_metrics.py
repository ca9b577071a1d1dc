from __future__ import annotations

import logging

import pytest

from bench.eval import ragas_metrics as rm


def test_identical_answer_scores_one_and_unrelated_scores_low() -> None:
    same = rm.answer_scores("o rio Tejo", ["Rio Tejo"])  # articles, case, punctuation normalised away
    assert same == pytest.approx({"string_similarity": 1.0, "rouge_l": 1.0, "chrf": 1.0})
    other = rm.answer_scores("Não sei responder.", ["Rio Tejo"])
    assert other["rouge_l"] == 0.0 and other["string_similarity"] < 0.5 and other["chrf"] < 0.2


def test_accented_words_are_not_split_by_rouge_tokenizer() -> None:
    # rouge_score keeps only [a-z0-9]: without accent folding "eleição" would become "elei o".
    folded = rm.answer_scores("eleição presidencial", ["eleicao presidencial"])
    assert folded["rouge_l"] == pytest.approx(1.0)
    partial = rm.answer_scores("eleição", ["eleição presidencial"])
    assert partial["rouge_l"] == pytest.approx(2 / 3)  # P=1, R=1/2


def test_max_over_gold_answers_and_failed_rows() -> None:
    best = rm.answer_scores("Tejo", ["rio Douro", "Tejo"])
    assert best["rouge_l"] == 1.0 and best["string_similarity"] == 1.0
    assert rm.answer_scores("Tejo", ["Tejo"], failed=True) == dict.fromkeys(rm.ANSWER_METRICS, 0.0)
    assert rm.answer_scores("", ["Tejo"]) == dict.fromkeys(rm.ANSWER_METRICS, 0.0)


def test_context_recall_matches_gold_paragraph() -> None:
    gold = "Lisboa é a capital de Portugal, junto ao rio Tejo."
    hit = rm.context_recall(["Berlim é a capital da Alemanha.", gold + " "], [gold])
    miss = rm.context_recall(["O Porto fica no norte, junto ao Douro, perto do mar."], [gold])
    assert hit == 1.0 and miss == 0.0
    assert rm.context_recall([], [gold]) is None and rm.context_recall([gold], [""]) is None


def test_score_row_only_scores_context_for_retrieval() -> None:
    closed = rm.score_row("Tejo", ["Tejo"], failed=False, retrieved_texts=None, gold_context="rio Tejo")
    assert closed["ragas_context_recall"] is None and closed["rouge_l"] == 1.0
    rag = rm.score_row("Tejo", ["Tejo"], failed=False, retrieved_texts=["rio Tejo"], gold_context="rio Tejo")
    assert rag["ragas_context_recall"] == 1.0
    assert set(rag) == set(rm.RAGAS_METRICS)


def test_rouge_does_not_log_per_answer(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        rm.answer_scores("rio Tejo", ["Tejo"])
    assert not [r for r in caplog.records if r.name == "absl"]  # rouge_score logged one line per call
