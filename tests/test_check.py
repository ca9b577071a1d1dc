"""Regression gate: stable metrics fail beyond tolerance, noisy ones warn unless far worse."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from test_report import fake_scores

from bench.__main__ import main
from bench.config import BenchError
from bench.reporting import check as chk


def save(path: Path, scores: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scores), encoding="utf-8")
    return path


@pytest.fixture()
def baseline(tmp_path: Path) -> Path:
    return save(tmp_path / "baseline" / "smoke.json", fake_scores())


def run_with(tmp_path: Path, scores: dict[str, Any]) -> Path:
    save(tmp_path / "runs" / "smoke" / "scores.json", scores)
    return tmp_path / "runs" / "smoke"


def rows_with(out: str, status: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("|") and status in line]


def test_identical_passes(baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_with(tmp_path, fake_scores())
    assert chk.check(baseline, run) == 0
    out = capsys.readouterr().out
    assert out.startswith("| metric | variant | baseline | run | delta | status |")
    assert "| f1 | rag | 0.412 | 0.412 | +0.000 | ✅ |" in out
    assert not rows_with(out, "❌") and not rows_with(out, "⚠️")
    assert "**OK**: 0 regression(s), 0 warning(s)" in out
    # a scores.json path works as well as its directory
    assert chk.check(baseline, run / "scores.json") == 0


def test_retrieval_disabled_fails(baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scores = fake_scores()
    rag, base = scores["variants"]["rag"], scores["variants"]["base"]
    rag["f1"] = copy.deepcopy(base["f1"])
    rag["recall@k"] = {"mean": 0.0, "ci95": [0.0, 0.0]}
    assert chk.check(baseline, run_with(tmp_path, scores)) == 1
    out = capsys.readouterr().out
    failed = rows_with(out, "❌")
    assert any(r.startswith("| f1 | rag | 0.412 | 0.200 | -0.212 | ❌") for r in failed)
    assert any(r.startswith("| recall@k | rag | 0.800 | 0.000 | -0.800 | ❌") for r in failed)
    assert len(failed) == 2
    assert "**FAIL**: 2 regression(s)" in out


def test_within_tolerance_and_improvement_pass(baseline: Path, tmp_path: Path) -> None:
    scores = fake_scores()
    scores["variants"]["rag"]["f1"]["mean"] = 0.412 - 0.015  # within 0.02
    scores["variants"]["ft"]["f1"]["mean"] = 0.9  # better
    assert chk.check(baseline, run_with(tmp_path, scores)) == 0
    scores["variants"]["rag"]["f1"]["mean"] = 0.412 - 0.03
    assert chk.check(baseline, run_with(tmp_path / "x", scores)) == 1


def test_english_rate_up_is_a_regression(baseline: Path, tmp_path: Path) -> None:
    scores = fake_scores()
    scores["variants"]["ft"]["lang_en"]["mean"] = 0.5
    assert chk.check(baseline, run_with(tmp_path, scores)) == 1


def test_latency_slower_warns(baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scores = fake_scores()
    scores["variants"]["rag"]["latency_p50_ms"] *= 1.5
    assert chk.check(baseline, run_with(tmp_path, scores)) == 0
    out = capsys.readouterr().out
    warned = rows_with(out, "⚠️")
    assert warned == ["| latency_p50_ms | rag | 600.0 | 900.0 | ×1.50 | ⚠️ (noisy) |"]


def test_latency_far_slower_fails(baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scores = fake_scores()
    scores["variants"]["base"]["latency_p95_ms"] *= 5
    scores["variants"]["ft"]["tokens_per_s"] /= 4  # throughput: lower is worse
    assert chk.check(baseline, run_with(tmp_path, scores)) == 1
    failed = rows_with(capsys.readouterr().out, "❌")
    assert [r.split("|")[1:3] for r in failed] == [[" latency_p95_ms ", " base "], [" tokens_per_s ", " ft "]]


def test_missing_variant_or_metric_fails(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = fake_scores()
    del scores["variants"]["ft_rag"]
    assert chk.check(baseline, run_with(tmp_path, scores)) == 1
    assert "| (variant) | ft_rag | present | missing | – | ❌ (variant missing) |" in capsys.readouterr().out
    scores = fake_scores()
    scores["variants"]["rag"]["answer_in_context@k"] = None
    assert chk.check(baseline, run_with(tmp_path / "m", scores)) == 1
    assert "| answer_in_context@k | rag | 0.720 | – | missing | ❌ |" in capsys.readouterr().out


def test_more_failed_questions_fail(baseline: Path, tmp_path: Path) -> None:
    scores = fake_scores()
    scores["variants"]["oracle"]["failed"] = 2
    assert chk.check(baseline, run_with(tmp_path, scores)) == 1


def test_incomparable_runs_are_refused(baseline: Path, tmp_path: Path) -> None:
    other_questions = fake_scores(sha="f" * 64)
    with pytest.raises(BenchError, match=r"datasets\.questions\.sha256"):
        chk.check(baseline, run_with(tmp_path, other_questions))
    gpu = fake_scores(device="cuda", backend="transformers", quant="bf16")
    with pytest.raises(BenchError, match="not comparable") as info:
        chk.check(baseline, run_with(tmp_path / "g", gpu))
    assert "config.model.backend" in str(info.value) and "\n" not in str(info.value)
    moved = fake_scores(questions="/elsewhere/smoke.jsonl")  # same file (same sha) elsewhere: fine
    assert chk.check(baseline, run_with(tmp_path / "p", moved)) == 0
    del moved["datasets"]
    with pytest.raises(BenchError, match=r"config\.questions"):
        chk.check(baseline, run_with(tmp_path / "d", moved))
    other_quant = fake_scores(quant="Q8_0")
    with pytest.raises(BenchError, match="quantization: 'Q4_K_M' != 'Q8_0'"):
        chk.check(baseline, run_with(tmp_path / "q", other_quant))
    batched = fake_scores()
    batched["config"]["model"]["batch_size"] = 4
    with pytest.raises(BenchError, match=r"config\.model\.batch_size"):
        chk.check(baseline, run_with(tmp_path / "b", batched))


def test_other_config_change_warns(baseline: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scores = fake_scores()
    scores["config_hash"] = "fedcba9876543210"
    scores["config"]["run"]["bootstrap_samples"] = 500
    assert chk.check(baseline, run_with(tmp_path, scores)) == 0
    assert "config.run.bootstrap_samples: 1000 -> 500" in caplog.text


def test_tolerances_sidecar(baseline: Path, tmp_path: Path) -> None:
    scores = fake_scores()
    scores["variants"]["rag"]["f1"]["mean"] = 0.412 - 0.04
    run = run_with(tmp_path, scores)
    assert chk.check(baseline, run) == 1
    save(baseline.with_name("smoke.tolerances.json"), {"per_metric": {"f1": 0.05}})
    assert chk.check(baseline, run) == 0
    save(baseline.with_name("smoke.tolerances.json"), {"bogus": 1})
    with pytest.raises(BenchError, match="expected an object"):
        chk.check(baseline, run)


def test_compare_pure_function() -> None:
    base = fake_scores()
    run = copy.deepcopy(base)
    run["variants"]["new_variant"] = run["variants"]["rag"]
    result = chk.compare(base, run, chk.Tolerances(stable_abs=0.0))
    assert result.exit_code == 0
    assert any("new_variant" in w for w in result.warnings)


def test_cli_exit_codes(baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = run_with(tmp_path, fake_scores())
    assert main(["check", "--baseline", str(baseline), str(ok)]) == 0
    bad = fake_scores(sha="f" * 64)
    assert main(["check", "--baseline", str(baseline), str(run_with(tmp_path / "b", bad))]) == 2
    assert "not comparable" in capsys.readouterr().err
    assert main(["check", "--baseline", str(tmp_path / "nope.json"), str(ok)]) == 2


def test_other_hardware_never_fails_on_timings(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    scores = fake_scores()
    scores["env"]["cpu_model"] = "Slower CPU"
    scores["variants"]["rag"]["latency_p50_ms"] *= 5
    assert chk.check(baseline, run_with(tmp_path, scores)) == 0
    assert rows_with(capsys.readouterr().out, "⚠️")[0].startswith("| latency_p50_ms | rag |")
    assert "hardware differs from the baseline (env.cpu_model)" in caplog.text
    scores["variants"]["rag"]["f1"]["mean"] = 0.1  # stable metrics still fail
    assert chk.check(baseline, run_with(tmp_path / "s", scores)) == 1


@pytest.mark.parametrize("metric", ["exact_match", "f1_qstripped"])
def test_headline_metrics_are_gated(
    baseline: Path, tmp_path: Path, metric: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = fake_scores()
    scores["variants"]["rag"][metric]["mean"] -= 0.1
    assert chk.check(baseline, run_with(tmp_path, scores)) == 1
    assert any(f"| {metric} | rag |" in line for line in rows_with(capsys.readouterr().out, "❌"))


def test_more_truncation_is_a_regression(baseline: Path, tmp_path: Path) -> None:
    scores = fake_scores()
    scores["variants"]["oracle"]["truncated"]["mean"] += 0.1
    assert chk.check(baseline, run_with(tmp_path, scores)) == 1


def test_baseline_latencies_below_the_floor_never_fail(baseline: Path, tmp_path: Path) -> None:
    """No-model baselines answer in microseconds: 0.02 ms vs 0.08 ms is timer noise, not a 4x slowdown."""
    base, run = fake_scores(), fake_scores()
    base["variants"]["echo"] = {**base["variants"]["base"], "latency_p50_ms": 0.02, "latency_p95_ms": 0.03}
    run["variants"]["echo"] = {**run["variants"]["base"], "latency_p50_ms": 0.08, "latency_p95_ms": 0.2}
    assert chk.check(save(tmp_path / "b.json", base), run_with(tmp_path, run)) == 0


def test_per_variant_tolerance_loosens_only_that_variant(baseline: Path, tmp_path: Path) -> None:
    tol = chk.Tolerances(stable_abs=0.02, per_variant={"ft": 0.15})
    assert tol.for_metric("exact_match", "ft") == 0.15 and tol.for_metric("exact_match", "rag") == 0.02
    scores = fake_scores()
    scores["variants"]["ft"]["exact_match"]["mean"] -= 0.1
    assert chk.check(baseline, run_with(tmp_path, scores), tol) == 0
    scores["variants"]["rag"]["exact_match"]["mean"] -= 0.1
    assert chk.check(baseline, run_with(tmp_path, scores), tol) == 1


def test_sparse_only_runs_compare_whatever_embedder_they_name(tmp_path: Path) -> None:
    """A BM25-only index embeds nothing: two sparse runs naming different embedders are comparable; a dense
    or hybrid pair is not."""
    sparse = fake_scores()
    sparse["config"]["index"]["retrieval"] = "sparse"
    other = copy.deepcopy(sparse)
    other["config"]["index"]["embedder"] = "e5-torch"
    assert chk.compare(sparse, other).exit_code == 0
    sparse["config"]["index"]["retrieval"] = other["config"]["index"]["retrieval"] = "hybrid"
    with pytest.raises(BenchError, match=r"config\.index\.embedder"):
        chk.compare(sparse, other)
