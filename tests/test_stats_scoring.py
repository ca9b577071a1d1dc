"""Statistics (bootstrap, Wilson, McNemar, detectable effect) and scoring (registry, summaries, pairs)."""

from __future__ import annotations

import math

import pytest

from bench.core import stats
from bench.eval import scoring


def test_bootstrap_ci_is_deterministic_and_contains_mean() -> None:
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 1.0]
    ci = stats.bootstrap_ci(values, n=500, seed=7)
    assert ci == stats.bootstrap_ci(values, n=500, seed=7)
    assert ci != stats.bootstrap_ci(values, n=500, seed=8)
    assert ci is not None
    lo, hi = ci
    assert lo < sum(values) / len(values) < hi
    assert lo >= 0.0 and hi <= 1.0
    assert stats.bootstrap_ci([], n=10) is None
    assert stats.bootstrap_ci([0.5], n=10) == (0.5, 0.5)
    assert stats.mean_ci([], n=10)["mean"] is None


def test_bootstrap_chunks_give_the_same_interval_as_one_block() -> None:
    # 10,000 resamples of 63 values are drawn in one block; of 1,000 values in several: same distribution.
    values = [float(i % 7) / 6 for i in range(1000)]
    lo, hi = stats.bootstrap_ci(values, n=3000, seed=1) or (0, 0)
    mean = sum(values) / len(values)
    se = (sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values)) ** 0.5
    assert lo == pytest.approx(mean - 1.96 * se, abs=0.3 * se)
    assert hi == pytest.approx(mean + 1.96 * se, abs=0.3 * se)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        # reference values: scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
        (0, 63, 0.0, 0.057471),
        (1, 63, 0.002807, 0.084585),
        (17, 63, 0.175838, 0.390299),
        (63, 63, 0.942529, 1.0),
        (5, 20, 0.111862, 0.468701),
    ],
)
def test_wilson_interval_known_values(k: int, n: int, lo: float, hi: float) -> None:
    got = stats.wilson_ci(k, n)
    assert got is not None
    assert got[0] == pytest.approx(lo, abs=2e-5) and got[1] == pytest.approx(hi, abs=2e-5)


def test_rate_ci_never_collapses_at_zero() -> None:
    out = stats.rate_ci([0.0] * 63)
    assert out["mean"] == 0.0 and out["ci95"][0] == pytest.approx(0.0, abs=1e-12) and out["ci95"][1] > 0.05
    assert out["interval"] == "wilson"
    assert stats.rate_ci([])["ci95"] is None


def test_mcnemar_exact_known_values() -> None:
    # 10 discordant pairs, 9 favour a: p = 2 * P(X <= 1 | Bin(10, .5)) = 2 * 11/1024
    a = [1.0] * 9 + [0.0] + [1.0] * 5
    b = [0.0] * 9 + [1.0] + [1.0] * 5
    res = stats.mcnemar_exact(a, b)
    assert (res["b10"], res["b01"]) == (9, 1)
    assert res["p_value"] == pytest.approx(22 / 1024)
    # balanced discordance: p = 1; no discordance: p = 1
    assert stats.mcnemar_exact([1, 0, 1, 0], [0, 1, 0, 1])["p_value"] == 1.0
    assert stats.mcnemar_exact([1, 1], [1, 1])["p_value"] == 1.0
    # 6 vs 0: p = 2 / 64 = 0.03125 (significant); 5 vs 0: 0.0625 (not)
    assert stats.mcnemar_exact([1] * 6, [0] * 6)["p_value"] == pytest.approx(0.03125)
    assert stats.mcnemar_exact([1] * 5, [0] * 5)["p_value"] == pytest.approx(0.0625)
    with pytest.raises(ValueError):
        stats.mcnemar_exact([1], [1, 0])


def test_paired_comparison_binary_uses_mcnemar() -> None:
    a = [1.0] * 5 + [0.0] * 15
    b = [0.0] * 20
    res = stats.paired_comparison(a, b, binary=True, n=2000, seed=0)
    assert res["diff"] == pytest.approx(0.25)
    # the bootstrap interval excludes 0, but 5 vs 0 discordant pairs is p = 0.0625: not significant
    assert res["ci95"][0] > 0
    assert res["p_value"] == pytest.approx(0.0625) and res["significant"] is False
    cont = stats.paired_comparison(a, b, binary=False, n=2000, seed=0)
    assert cont["significant"] is True and "p_value" not in cont


def test_smallest_detectable_effect() -> None:
    d = [1.0, -1.0] * 32  # sd ≈ 1.008, n = 64
    expected = (stats.Z95 + stats.Z80) * 1.0078740 / 8
    assert stats.smallest_detectable(d) == pytest.approx(expected, rel=1e-4)
    assert stats.smallest_detectable([0.0] * 16) == pytest.approx((stats.Z95 + stats.Z80) * 0.5 / 4)
    assert stats.smallest_detectable([1.0]) is None
    assert math.isclose(stats.Z95 + stats.Z80, 2.8016, abs_tol=1e-3)


def test_percentile_and_latency_of() -> None:
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert stats.percentile([], 95) is None
    lat = scoring.latency_of({"total_ms": 500.0, "ttft_ms": 50.0, "new_tokens": 10}, 12.0)
    assert lat == {
        "retrieval_ms": 12.0,
        "generation_ms": 500.0,
        "ttft_ms": 50.0,
        "new_tokens": 10,
        "tokens_per_s": 20.0,
        "batch_size": 1,
    }


def _row(qid: str, answer: str, gold: list[str], question: str = "Qual?", **kw: object) -> dict:
    error = kw.pop("error", None)
    scores = scoring.score_answer(answer, gold, question, failed=error is not None, **kw)  # type: ignore[arg-type]
    return {
        "question_id": qid,
        "metrics": scores,
        "error": error,
        "latency": scoring.latency_of({"total_ms": 100.0, "new_tokens": 5}, 10.0),
    }


def test_score_answer_fields() -> None:
    s = scoring.score_answer(
        "Berlim",
        ["Berlim"],
        "Qual a capital?",
        passages=["x", "Berlim é"],
        retrieved_titles=["Lisboa", "Berlim"],
        gold_title="Berlim",
        k=1,
    )
    assert s["recall@k"] == 0.0 and s["answer_in_context@k"] == 0.0
    assert s["exact_match"] == 1.0 and s["f1_qstripped"] == 1.0 and s["truncated"] == 0.0
    assert scoring.score_answer("x", ["y"], "q")["recall@k"] is None
    assert scoring.score_answer("x", ["y"], "q")["answer_in_context@k"] is None
    failed = scoring.score_answer("Berlim", ["Berlim"], "q", failed=True, truncated=True)
    assert failed["exact_match"] == 0.0 and failed["truncated"] == 0.0 and failed["lang"] == "und"
    assert scoring.score_answer("Berlim fica", ["Berlim"], "q", truncated=True)["truncated"] == 1.0


def test_summarize_variant_rates_and_language_shares() -> None:
    rows = [
        _row("q1", "Berlim", ["Berlim"]),
        _row("q2", "A cidade fica junto ao rio Tejo, em Portugal.", ["rio Tejo"]),
        _row("q3", "The city lies on the Tagus river in Portugal.", ["rio Tejo"]),
        _row("q4", "", ["sete"], error="boom"),
        _row("q5", "这个城市位于葡萄牙", ["Lisboa"], truncated=True),
    ]
    out = scoring.summarize_variant(rows, n_boot=200, seed=0)
    assert out["n"] == 5 and out["failed"] == 1
    assert out["exact_match"]["mean"] == pytest.approx(0.2)
    assert out["exact_match"]["interval"] == "wilson" and out["f1"]["interval"] == "bootstrap"
    assert out["contains"]["mean"] == pytest.approx(0.4)
    assert out["truncated"]["mean"] == pytest.approx(0.2)
    # determined: q2 pt, q3 en, q5 other (Chinese); undetermined: q1 (a name), q4 (failed)
    assert out["lang_pt"]["mean"] == pytest.approx(1 / 3)
    assert out["lang_en"]["mean"] == pytest.approx(1 / 3)
    assert out["lang_other"]["mean"] == pytest.approx(1 / 3)
    assert out["lang_und"]["mean"] == pytest.approx(0.4) and out["lang_und"]["ci95"][1] < 1
    assert out["recall@k"] is None and out["answer_in_context@k"] is None
    assert out["latency_p50_ms"] == pytest.approx(110.0)


def test_compare_variants_and_baseline_checks() -> None:
    gold, q = ["Lisboa"], "Qual é a capital de Portugal?"
    base = [_row(f"q{i}", "Porto", gold, q) for i in range(12)]
    rag = [_row(f"q{i}", "Lisboa", gold, q) for i in range(12)]
    echo = [_row(f"q{i}", q, gold, q) for i in range(12)]
    picker = [_row(f"q{i}", "Portugal tem muitas cidades.", gold, q) for i in range(12)]
    out = scoring.compare_variants(
        {"base": base, "rag": rag, "oracle": rag, "echo": echo, "picker_rag": picker, "picker_oracle": rag},
        n_boot=200,
        seed=0,
    )
    assert {"rag-base", "oracle-rag", "base-echo", "rag-picker_rag", "oracle-picker_oracle"} <= set(out)
    assert out["rag-base"]["exact_match"]["diff"] == 1.0 and out["rag-base"]["exact_match"]["significant"]
    assert out["rag-base"]["exact_match"]["p_value"] == pytest.approx(2 / 4096)
    assert out["oracle-rag"]["exact_match"]["significant"] is False
    checks = scoring.baseline_checks(out)
    assert checks["rag"]["beats"] is True and checks["rag"]["significant"] is True
    # the oracle equals its picker here: it does not beat it, and is flagged
    assert checks["oracle"]["beats"] is False
    # base "Porto" vs echo: both EM 0 -> not beaten
    assert checks["base"]["beats"] is False


def test_registry_drives_check_and_report() -> None:
    from bench.reporting import check, tables

    headline = [n for n, x in scoring.METRICS.items() if x.headline]
    assert headline == ["exact_match", "f1_qstripped"]
    assert {"exact_match", "f1_qstripped"} <= set(check.STABLE_METRICS)
    assert "truncated" in check.LOWER_IS_BETTER
    assert {m for m, _ in tables.SCORE_COLUMNS} <= set(scoring.METRICS)


def test_summarize_groups_by_relation_and_stratum() -> None:
    def row(qid: str, em: float, relation: str, stratum: str) -> dict:
        metrics = {"exact_match": em, "contains": em}
        return {"question_id": qid, "metrics": metrics, "groups": {"relation": relation, "stratum": stratum}}

    rows = [row("a", 1.0, "birth_year", "popular"), row("b", 0.0, "birth_year", "obscure"),
            row("c", 1.0, "birth_place", "obscure")]  # fmt: skip
    perfect = [dict(r, metrics={"exact_match": 1.0, "contains": 1.0}) for r in rows]
    out = scoring.summarize_groups({"base": rows, "rag": perfect})
    assert set(out) == {"relation", "stratum"}
    assert out["relation"]["birth_year"]["base"]["exact_match"]["mean"] == 0.5
    assert out["relation"]["birth_year"]["base"]["exact_match"]["n"] == 2
    assert out["stratum"]["obscure"]["rag"]["contains"]["mean"] == 1.0
    assert scoring.summarize_groups({"base": [{"question_id": "x", "metrics": {}}]}) == {}
    from bench.reporting.tables import render_groups

    tables = dict(render_groups({"groups": out}))
    assert (
        "| birth_year (n=2) | 0.500 [0.09, 0.91] / 0.50 | 1.000 [0.34, 1.00] / 1.00 |" in tables["relation"]
    )
