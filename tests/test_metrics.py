from __future__ import annotations

import pytest

from bench import metrics as m


def test_normalize_pt_folds_accents_articles_punctuation() -> None:
    assert m.normalize_pt("  A Universidade de São Paulo! ") == "universidade de sao paulo"
    assert m.normalize_pt("«Os rios», e as águas…") == "rios e aguas"


def test_exact_match_and_f1_take_max_over_gold() -> None:
    assert m.exact_match("o Tejo", ["rio Tejo", "Tejo"]) == 1.0
    assert m.exact_match("rio Douro", ["rio Tejo", "Tejo"]) == 0.0
    assert m.token_f1("rio Tejo", ["Tejo", "rio Tejo"]) == 1.0
    # pred {rio, tejo, lisboa} vs gold {rio, tejo}: P=2/3, R=1 -> F1=0.8
    assert m.token_f1("rio Tejo Lisboa", ["rio Tejo"]) == pytest.approx(0.8)
    assert m.token_f1("Porto", ["Lisboa"]) == 0.0


def test_contains_is_word_aligned() -> None:
    assert m.contains("Fica junto ao rio Tejo, em Lisboa.", ["rio tejo"]) == 1.0
    assert m.contains("Tejolândia", ["Tejo"]) == 0.0


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Berlim é a capital e a maior cidade da Alemanha.", "pt"),
        ("O curso de Ciência da Computação tem duração de quatro anos.", "pt"),
        ("The capital of Germany is Berlin, its largest city.", "en"),
        ("The course lasts four years at the university.", "en"),
        ("Berlim", "und"),
        ("rio Tejo", "und"),
        ("quatro anos", "und"),
        ("Universidade Federal de Mato Grosso", "und"),  # only names (capitalised) -> no signal
        ("1998 2004 3 5", "und"),
    ],
)
def test_answer_language(text: str, lang: str) -> None:
    assert m.answer_language(text) == lang


def test_answer_language_does_not_touch_global_langid() -> None:
    import py3langid

    m.answer_language("Berlim é a capital e a maior cidade da Alemanha.")
    assert py3langid.classify("Das ist ein deutscher Satz über die Stadt Berlin.")[0] == "de"


def test_bootstrap_ci_is_deterministic_and_contains_mean() -> None:
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 1.0]
    ci = m.bootstrap_ci(values, n=500, seed=7)
    assert ci == m.bootstrap_ci(values, n=500, seed=7)
    assert ci != m.bootstrap_ci(values, n=500, seed=8)
    assert ci is not None
    lo, hi = ci
    assert lo < sum(values) / len(values) < hi
    assert lo >= 0.0 and hi <= 1.0
    assert m.bootstrap_ci([], n=10) is None
    assert m.bootstrap_ci([0.5], n=10) == (0.5, 0.5)
    assert m.mean_ci([], n=10) == {"mean": None, "ci95": None}


def test_paired_bootstrap_significance() -> None:
    a = [1.0] * 18 + [0.0] * 2
    b = [0.0] * 18 + [1.0] * 2
    res = m.paired_bootstrap(a, b, n=500, seed=0)
    assert res["diff"] == pytest.approx(0.8)
    assert res["significant"] is True
    assert res["ci95"][0] > 0
    same = m.paired_bootstrap(a, a, n=500, seed=0)
    assert same == {"diff": 0.0, "ci95": [0.0, 0.0], "significant": False}
    noisy = m.paired_bootstrap([1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 1, 0], n=500, seed=0)
    assert noisy["significant"] is False
    assert m.paired_bootstrap(a, b, n=500, seed=0) == res
    with pytest.raises(ValueError):
        m.paired_bootstrap([1.0], [1.0, 0.0])


def test_percentile_and_latency_of() -> None:
    assert m.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert m.percentile([], 95) is None
    lat = m.latency_of({"total_ms": 500.0, "ttft_ms": 50.0, "new_tokens": 10}, 12.0)
    assert lat == {
        "retrieval_ms": 12.0,
        "generation_ms": 500.0,
        "ttft_ms": 50.0,
        "new_tokens": 10,
        "tokens_per_s": 20.0,
        "batch_size": 1,  # rows cached before batching existed have no batch_size: 1
    }
    assert m.latency_of({"total_ms": 100.0, "new_tokens": 2, "batch_size": 4})["batch_size"] == 4


def _row(
    qid: str, answer: str, gold: list[str], lang_text: str | None = None, error: str | None = None
) -> dict:
    scores = m.score_answer(answer, gold, failed=error is not None)
    return {
        "question_id": qid,
        "metrics": scores,
        "error": error,
        "latency": m.latency_of({"total_ms": 100.0, "new_tokens": 5}, 10.0),
    }


def test_score_answer_and_summarize_variant() -> None:
    s = m.score_answer(
        "Berlim",
        ["Berlim"],
        retrieved_titles=["Lisboa", "Berlim"],
        retrieved_texts=["x", "Berlim é"],
        gold_title="Berlim",
        k=1,
    )
    assert s["recall@k"] == 0.0 and s["answer_in_context@k"] == 0.0
    assert m.score_answer("x", ["y"])["recall@k"] is None
    assert m.score_answer("Berlim", ["Berlim"], failed=True)["exact_match"] == 0.0
    rows = [
        _row("q1", "Berlim", ["Berlim"]),
        _row("q2", "A cidade fica junto ao rio Tejo, em Portugal.", ["rio Tejo"]),
        _row("q3", "The city lies on the Tagus river in Portugal.", ["rio Tejo"]),
        _row("q4", "", ["sete"], error="boom"),
    ]
    out = m.summarize_variant(rows, n_boot=200, seed=0)
    assert out["n"] == 4 and out["failed"] == 1
    assert out["exact_match"]["mean"] == pytest.approx(0.25)
    assert out["contains"]["mean"] == pytest.approx(0.5)
    # determined answers: q2 (pt) and q3 (en); q1 is a bare name, q4 failed
    assert out["lang_pt"]["mean"] == pytest.approx(0.5)
    assert out["lang_en"]["mean"] == pytest.approx(0.5)
    assert out["lang_undetermined"] == pytest.approx(0.5)
    assert out["recall@k"] is None and out["answer_in_context@k"] is None
    assert out["latency_p50_ms"] == pytest.approx(110.0)
    assert out["tokens_per_s"] == pytest.approx(50.0)


def test_compare_variants_pairs() -> None:
    base = [_row(f"q{i}", "Porto", ["Lisboa"]) for i in range(12)]
    rag = [_row(f"q{i}", "Lisboa", ["Lisboa"]) for i in range(12)]
    out = m.compare_variants({"base": base, "rag": rag, "oracle": rag}, n_boot=200, seed=0)
    assert set(out) == {"rag-base", "oracle-rag"}
    assert out["rag-base"]["f1"]["diff"] == 1.0 and out["rag-base"]["f1"]["significant"] is True
    assert out["oracle-rag"]["exact_match"]["significant"] is False
