"""The small-vs-large corpus block: retrieval, paired EM and the causes of lost questions, from two runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.reporting import corpus_compare


def _row(qid: str, answer: str, gold: str, hits: list[tuple[str, str]], em: float) -> dict[str, Any]:
    passages = [{"title": t, "section": "", "text": text} for t, text in hits]
    return {
        "variant": "rag", "question_id": qid, "question": f"Em que ano nasceu {gold}?", "answer": answer,
        "answers": ["1912"], "gold_title": gold, "retrieved": [{"title": t} for t, _ in hits],
        "passages": passages, "groups": {"relation": "birth_year"}, "error": None,
        "metrics": {"exact_match": em},
    }  # fmt: skip


def _run(root: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    run = root / name
    run.mkdir()
    (run / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (run / "scores.json").write_text(json.dumps({"run_id": name}), encoding="utf-8")
    return run


def test_lost_questions_are_attributed_on_the_large_corpus(tmp_path: Path) -> None:
    gold_a = ("Ana Silva", "Ana Silva (Lisboa, 1912 — Porto, 1980) foi uma escritora.")
    gold_b = ("Rui Costa", "Rui Costa (Braga, 1912 — Faro, 1990) foi um pintor.")
    namesake = ("Ana Silva (atleta)", "Ana Silva (Coimbra, 1955) é uma atleta.")
    small = _run(tmp_path, "small", [
        _row("a", "1912", "Ana Silva", [gold_a], 1.0),
        _row("b", "1912", "Rui Costa", [gold_b], 1.0),
    ])  # fmt: skip
    large = _run(tmp_path, "large", [
        _row("a", "1955", "Ana Silva", [namesake], 0.0),  # the namesake's page took the gold's place
        _row("b", "1912", "Rui Costa", [namesake, gold_b], 1.0),  # gold page at rank 2
    ])  # fmt: skip
    rows_s, rows_l = corpus_compare.load_rows(small), corpus_compare.load_rows(large)
    assert (
        corpus_compare.gold_rank(rows_l["rag"]["b"]) == 2
        and corpus_compare.gold_rank(rows_l["rag"]["a"]) is None
    )
    _, tests = corpus_compare.variant_table(rows_s, rows_l)
    assert tests["rag"]["b01"] == 1 and tests["rag"]["b10"] == 0 and tests["rag"]["n"] == 2
    _, counts = corpus_compare.explain(rows_s, rows_l)
    assert counts["lost"] == {"retrieval_miss": 1} and not counts["gained"]
    body = corpus_compare.render(small, large)
    # recall@k 1.0 small vs 0.5 large; MRR 1.0 vs (0 + 1/2) / 2 = 0.25
    # other-page passages: 0 of 1 per question on the small corpus, (1 + 1) / 2 on the large one
    assert "| RAG | 2 | 1.000 [0.34, 1.00] | 1.000 | 0.00 | 0.500 [0.09, 0.91] | 0.250 | 1.00 |" in body
    assert (
        "RAG lost 1 and gained 0" in body
        and "| gold page not among the passages (`retrieval_miss`) | 1 | 0 |" in body
    )
