"""The report's "Answers side by side" section (bench/reporting/samples.py) and its hook in
report.render()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.reporting import report, samples


def row(variant: str, qid: str, answer: str, f1: float, lang: str = "pt", **extra: Any) -> dict[str, Any]:
    metrics = {"exact_match": float(f1 == 1.0), "f1": f1, "contains": float(f1 > 0.5), "lang": lang}
    metrics.update(extra)
    return {
        "variant": variant,
        "question_id": qid,
        "question": f"Pergunta {qid}?",
        "answer": answer,
        "answers": [f"ouro {qid}", "alt"],
        "metrics": metrics,
        "error": None,
    }


def corpus(n_questions: int = 12) -> list[dict[str, Any]]:
    """base always 0.2; rag agrees with base except on q03 (1.0) and q07 (0.8): those disagree most."""
    rows = []
    for i in range(n_questions):
        qid = f"q{i:02d}"
        rag_f1 = {3: 1.0, 7: 0.8}.get(i, 0.2)
        rows.append(row("base", qid, f"resposta base {i}", 0.2))
        rows.append(row("rag", qid, f"resposta rag {i}", rag_f1))
    return rows


def test_choice_is_deterministic_disagreement_first_then_seeded() -> None:
    rows = corpus()
    chosen = samples.choose_questions(rows, n=6, seed=0)
    assert chosen[:2] == ["q03", "q07"]  # the two with a score spread, largest first
    assert len(chosen) == 6 and len(set(chosen)) == 6
    assert samples.choose_questions(rows, n=6, seed=0) == chosen  # same seed, same choice
    others = {tuple(samples.choose_questions(rows, n=6, seed=s)[2:]) for s in range(5)}
    assert len(others) > 1  # the random part follows the seed
    assert samples.choose_questions(rows, n=50, seed=0)[:2] == ["q03", "q07"]
    assert sorted(samples.choose_questions(rows, n=50, seed=0)) == sorted({r["question_id"] for r in rows})
    assert samples.choose_questions(rows, n=0) == []


def test_table_has_gold_answers_scores_and_language_flags() -> None:
    rows = corpus(4)
    rows[1] = row("rag", "q00", "The answer is | here", 0.2, lang="en")
    text = samples.render_answer_samples(rows, n=4, seed=1)
    assert "4 of 4 questions: 1 where the variants' F1 differs most, 3 drawn at random (seed 1)" in text
    assert "| question (gold) | variant | answer | EM | F1 | cont. | lang |" in text
    assert "`q03` Pergunta q03? (gold: ouro q03 / alt) | base | resposta base 3 | 0 | 0.20 | 0 | pt |" in text
    assert "|   | rag | resposta rag 3 | 1 | 1.00 | 1 | pt |" in text  # question cell only on the first row
    assert "The answer is \\| here" in text and "**en** ⚠" in text  # pipe escaped, language flagged
    assert "1 answer(s) detected as another language than Portuguese:" in text
    assert "- rag · `q00` · **en**: The answer is \\| here" in text


def test_qstripped_f1_is_preferred_and_missing_metrics_show_a_dash() -> None:
    rows = [
        row("base", "a", "x", 0.5, f1_qstripped=0.1),
        row("rag", "a", "y", 0.5, f1_qstripped=0.9),
        {
            "variant": "echo",
            "question_id": "a",
            "question": "Q?",
            "answer": "Q?",
            "answers": ["g"],
            "metrics": {},
        },
        row("base", "b", "z" * 300, 0.5),
    ]
    text = samples.render_answer_samples(rows, n=2)
    assert "| F1 (q-stripped) |" in text
    assert "1 where the variants' F1 (q-stripped) differs most" in text  # spread 0.8 on "a", none on "b"
    assert "| rag | y | 0 | 0.90 |" in text
    assert "| echo | Q? | – | – | – | – |" in text
    assert "z" * 119 + "…" in text and "z" * 121 not in text  # answers are cut to 120 characters
    assert "No answer was detected as another language than Portuguese." in text


def test_errors_empty_input_and_long_non_portuguese_list() -> None:
    failed = row("base", "a", "", 0.0)
    failed["error"] = "RuntimeError: boom"
    assert "_(error: RuntimeError: boom)_" in samples.render_answer_samples(
        [failed, row("rag", "a", "ok", 1.0)]
    )
    assert samples.render_answer_samples([]) == "_No answers to show._\n"
    many = [row("ft", f"q{i:02d}", "an English answer", 0.0, lang="en") for i in range(20)]
    text = samples.render_non_portuguese(many)
    assert text.count("\n- ft ·") == samples.MAX_NON_PT and "… and 5 more" in text


def test_report_appends_the_section_when_answers_sit_beside_scores(tmp_path: Path) -> None:
    from test_report import fake_scores, write_run

    with_answers = write_run(tmp_path, fake_scores("with-answers"))
    lines = [json.dumps(r, ensure_ascii=False) for r in corpus(5)]
    (with_answers / "answers.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    without = write_run(tmp_path, fake_scores("without-answers"))
    out = report.render([with_answers, without], tmp_path / "REPORT.md", samples=3)
    text = out.read_text(encoding="utf-8")
    assert text.count("#### Answers side by side") == 1
    section = text.split("#### Answers side by side", 1)[1]
    assert "3 of 5 questions: 1 where the variants' F1 differs most, 2 drawn at random" in section
    assert "`q03` Pergunta q03?" in section
