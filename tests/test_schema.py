"""The scores.json schema (bench/core/schema.py): typed views and validation that names file and variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.config import BenchError
from bench.core.schema import Estimate, Scores, load_scores, ordered_variants


def _write(tmp_path: Path, variants: object) -> Path:
    doc = {"run_id": "r", "variants": variants, "env": {"git_commit": "abc", "git_dirty": False},
           "artifacts": {"index": "k1"}}  # fmt: skip
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_scores_parse_into_typed_views(tmp_path: Path) -> None:
    est = {"mean": 0.25, "ci95": [0.1, 0.4], "interval": "wilson", "n": 20}
    path = _write(tmp_path, {"rag": {"n": 20, "exact_match": est, "latency_p50_ms": 812.5, "label": "RAG"}})
    s = Scores.parse(json.loads(path.read_text()), path)
    assert s.variants["rag"].metrics["exact_match"] == Estimate(0.25, (0.1, 0.4), "wilson", 20)
    assert s.variants["rag"].mean("latency_p50_ms") == 812.5 and s.variants["rag"].mean("f1") is None
    assert "label" not in s.variants["rag"].metrics
    assert (s.git_commit, s.git_dirty, s.artifacts) == ("abc", False, {"index": "k1"})
    assert load_scores(tmp_path)["run_id"] == "r"  # a run directory works too


@pytest.mark.parametrize(
    "variants, message",
    [
        ([1, 2], "no 'variants' object"),
        ({"ft": 3}, "variant 'ft' is not an object"),
        ({"ft": {"exact_match": {"mean": 0.1, "ci95": [0.2]}}}, "variant 'ft', metric 'exact_match': ci95"),
        ({"ft": {"exact_match": True}}, "variant 'ft', metric 'exact_match': a boolean"),
    ],
)
def test_malformed_scores_name_the_file_and_variant(tmp_path: Path, variants: object, message: str) -> None:
    path = _write(tmp_path, variants)
    with pytest.raises(BenchError, match=message) as err:
        load_scores(path)
    assert str(path) in str(err.value)


def test_variant_order_follows_the_pipeline_then_names() -> None:
    assert ordered_variants(["zz", "rag", "echo", "base"]) == ["base", "rag", "echo", "zz"]
