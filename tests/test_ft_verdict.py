"""'What fine-tuning buys' (bench/reporting/ft_verdict.py) from a small sweep folder written here: the best
budget per recipe, the paired tests computed from the answers, the goal and the NLL trend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.reporting import ft_verdict, readme

IDS = [f"q{i}" for i in range(10)]


def _em(mean: float, n: int = 10) -> dict[str, Any]:
    return {"mean": mean, "ci95": [max(0.0, mean - 0.2), min(1.0, mean + 0.2)], "n": n}


def _point(root: Path, name: str, variants: dict[str, list[int]], cost: dict[str, Any] | None) -> None:
    d = root / name
    d.mkdir(parents=True)
    rows = [
        {"variant": v, "question_id": q, "metrics": {"exact_match": float(ok)}}
        for v, oks in variants.items()
        for q, ok in zip(IDS, oks, strict=True)
    ]
    (d / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    scores = {
        "run_id": name,
        "variants": {v: {"exact_match": _em(sum(oks) / 10)} for v, oks in variants.items()},
        "groups": {
            "stratum": {
                "popular": {v: {"exact_match": _em(sum(oks[:5]) / 5, 5)} for v, oks in variants.items()}
            }
        },
        "costs": {"finetune": cost} if cost else {},
    }
    (d / "scores.json").write_text(json.dumps(scores), encoding="utf-8")


def _probe(before: float, after: float) -> dict[str, Any]:
    return {
        "answer_nll_before": before,
        "answer_nll_after": after,
        "answer_nll_by_stratum": {"popular": {"before": before, "after": after, "n": 5}},
        "ppl_trained_before": 30.0,
        "ppl_trained_after": 5.0,
        "ppl_heldout_before": 20.0,
        "ppl_heldout_after": 21.0,
    }


def _sweep(tmp_path: Path) -> Path:
    root = tmp_path / "results" / ft_verdict.SWEEP
    ref = {"base": [0] * 10, "rag": [1] * 5 + [0] * 5, "span_rag": [1] * 9 + [0]}
    _point(root, "reference", ref, None)
    points = []
    for recipe, ems, nlls in (("cpt", (1, 2), (2.0, 1.9)), ("mixed", (4, 3), (1.5, 1.2))):
        for epochs, em, nll in zip((2, 8), ems, nlls, strict=True):
            name = f"recipe-{recipe}_epochs-{epochs}"
            ft = [1] * em + [0] * (10 - em)
            ft_rag = [1] * 7 + [0] * 3 if recipe == "mixed" else [0] * 2 + [1] * 4 + [0] * 4
            cost = {"epochs": float(epochs), "tokens_seen": 1000 * epochs, "train_time_s": 10.0 * epochs}
            _point(root, name, {"ft": ft, "ft_rag": ft_rag}, {**cost, "probe": _probe(2.5, nll)})
            points.append({"name": name, "axes": {"finetune.recipe": recipe, "finetune.epochs": str(epochs)}})
    manifest = {"name": "ft-recipes", "profile": "curves", "overrides": [], "axes": {}}
    manifest["points"] = [{"name": "reference", "axes": {}, "run_dir": "reference"}] + [
        {**p, "run_dir": p["name"]} for p in points
    ]
    (root / "sweep.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def test_best_budget_paired_tests_goal_and_trend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _sweep(tmp_path)
    text = ft_verdict.render(root)
    # mixed is best at 2 epochs (4/10); FT+RAG there: 7 right vs RAG's 5 (questions 5, 6 only FT+RAG)
    assert "**mixed**: best closed-book EM 0.400 at 2 epochs" in text
    assert "FT+RAG − RAG at the best budget 0.200 (b10=2, b01=0, p = 0.5, n = 10)" in text
    assert "b10=4, b01=0, p = 0.125" in text  # FT vs base at mixed's best point
    # cpt: best at 8 epochs; FT+RAG there: questions 2-5 right, RAG 0-4: b10 = 1 (q5), b01 = 2 (q0, q1)
    assert "**cpt**: best closed-book EM 0.200 at 8 epochs" in text and "(b10=1, b01=2, p = 1" in text
    assert "answer NLL 2.50 → 1.50 / 1.20 at 2 / 8 epochs (falling at every budget)" in text
    assert ": met — best 0.400 (recipe-mixed_epochs-2)" in text
    assert (
        "scores 0.900; best FT+RAG 0.700 (recipe-mixed_epochs-2; − RAG 0.200, b10=2, b01=0, p = 0.5" in text
    )
    assert "| popular (5) | 0.000 / 2.50 | 0.400 / 1.90 | 0.800 / 1.50 |" in text
    assert "| mixed | 8 | 8,000 | 80 |" in text
    monkeypatch.setattr(ft_verdict, "GOAL_EM", 0.5)
    assert ": not met — best 0.400" in ft_verdict.render(root)


def test_the_docs_block_renders_from_the_sweep_folder(tmp_path: Path) -> None:
    _sweep(tmp_path)
    found = readme.PERF_BLOCKS["ft-verdict"](tmp_path / "results" / "perf")
    assert found is not None and found[0].name == "sweep.json" and "**mixed**" in found[1]
    assert readme.PERF_BLOCKS["ft-verdict"](tmp_path / "elsewhere" / "perf") is None
    summary = readme.PERF_BLOCKS["ft-summary"](tmp_path / "results" / "perf")
    assert summary is not None and summary[1].startswith("- **cpt**") and "|" not in summary[1]


def test_a_tie_picks_the_smaller_budget() -> None:
    pts = [{"scores": {"variants": {"ft": {"exact_match": _em(0.1)}}}, "b": b} for b in (2, 4, 6)]
    pts[2]["scores"] = {"variants": {"ft": {"exact_match": _em(0.05)}}}
    assert ft_verdict.best(pts)["b"] == 2


def test_the_nll_trend_says_when_it_rose() -> None:
    def pt(epochs: int, after: float) -> dict:
        probe = {"answer_nll_before": 2.42, "answer_nll_after": after}
        return {"cost": {"epochs": float(epochs), "probe": probe}}

    assert ft_verdict._nll_trend([pt(2, 1.77), pt(4, 1.84), pt(6, 1.94)]) == (
        "2.42 → 1.77 / 1.84 / 1.94 at 2 / 4 / 6 epochs (not falling at every budget)"
    )
    assert "(falling at every budget)" in ft_verdict._nll_trend([pt(2, 2.0), pt(4, 1.5)])
