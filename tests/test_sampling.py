"""Stratified question samples: each prefix keeps every (relation, stratum) share; ids fix the order."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import pytest

from bench.config import BenchError
from bench.questions.load import sample_rows


def _rows(seed: int = 1) -> list[dict[str, str]]:
    rng = random.Random(seed)
    cells = {("birth_year", "popular"): 60, ("birth_place", "obscure"): 30, ("death_year", "mid"): 10}
    rows = [
        {"id": f"{rel}-{stratum}-{i}", "relation": rel, "stratum": stratum}
        for (rel, stratum), n in cells.items()
        for i in range(n)
    ]
    rng.shuffle(rows)
    return rows


@pytest.mark.parametrize("n", [10, 20, 50])
def test_every_prefix_keeps_the_cells_shares(n: int) -> None:
    picked = sample_rows(_rows(), n, "stratified", seed=0)
    counts = collections.Counter(r["relation"] for r in picked)
    assert len(picked) == n
    for rel, share in {"birth_year": 0.6, "birth_place": 0.3, "death_year": 0.1}.items():
        assert abs(counts[rel] - share * n) <= 1, (rel, counts)


def test_a_first_n_sample_would_not_be_stratified() -> None:
    """The check above can fail: the file's first rows of a sorted file hold one cell only."""
    rows = sorted(_rows(), key=lambda r: r["relation"])
    assert {r["relation"] for r in sample_rows(rows, 20, "first", 0)} == {"birth_place"}
    assert len({r["relation"] for r in sample_rows(rows, 20, "stratified", 0)}) == 3


def test_the_order_depends_on_ids_and_seed_only() -> None:
    a = [r["id"] for r in sample_rows(_rows(1), 30, "stratified", 0)]
    b = [r["id"] for r in sample_rows(_rows(2), 30, "stratified", 0)]  # same rows, another file order
    c = [r["id"] for r in sample_rows(_rows(1), 30, "stratified", 7)]
    assert a == b
    assert a != c
    everything = sample_rows(_rows(), 0, "stratified", 0)
    assert sorted(r["id"] for r in everything) == sorted(r["id"] for r in _rows())


def test_an_unknown_sample_is_refused_with_the_choices() -> None:
    with pytest.raises(BenchError, match="first, stratified"):
        sample_rows(_rows(), 5, "random", 0)


def test_question_pages_are_the_pages_of_the_asked_questions(tmp_path: Path) -> None:
    """scope = question_pages trains the pages of the questions a run asks: limit and sample apply."""
    import json

    from bench.config import load_config
    from bench.training.sft_views import question_titles

    path = tmp_path / "q.jsonl"
    rows = [
        {"id": f"q{i}", "question": f"Onde nasceu {t}?", "answers": ["Lisboa"], "title": t, "split": s}
        for i, (t, s) in enumerate([("Ana", "dev"), ("Bruno", "train"), ("Carla", "dev"), ("Duarte", "dev")])
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    every = load_config("smoke", [f"questions={path}", "split=dev", "limit=0"])
    assert question_titles(every) == {"ana", "carla", "duarte"}
    two = load_config("smoke", [f"questions={path}", "split=dev", "limit=2"])
    assert question_titles(two) == {"ana", "carla"}
