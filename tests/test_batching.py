"""finetune.length_window: records sorted by length within windows, the schedule across windows kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import BenchError, load_config
from bench.training import batching, finetune

pytestmark = pytest.mark.timeout(240)


def test_window_order_sorts_within_windows_only() -> None:
    lengths = [5, 1, 9, 3, 8, 2, 7]
    assert batching.window_order(lengths, 3) == [1, 0, 2, 5, 3, 4, 6]
    assert batching.window_order(lengths, 0) == list(range(7)) == batching.window_order(lengths, 1)
    recs = ["a", "b", "c", "d"]
    assert batching.length_grouped(recs, [3, 1, 2, 0], 2) == ["b", "a", "d", "c"]
    assert sorted(batching.length_grouped(recs, [3, 1, 2, 0], 4)) == recs  # a permutation, nothing lost


def test_record_lengths_add_eos_and_cut(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    short, long = "Lisboa", "Lisboa é a capital de Portugal. " * 40
    n_short = len(tok(short)["input_ids"]) + 1  # + EOS
    assert batching.record_lengths(tok, [short, long], 32) == [n_short, 32]
    assert batching.record_text({"prompt": "P: ", "completion": "R"}) == "P: R"


def _sets(tmp_path: Path, model: Path, *extra: str) -> list[str]:
    return [f"results_dir={tmp_path}", f"model.name={model}", "finetune.epochs=1", *extra]


def test_length_window_is_in_the_adapter_key_and_refuses_snapshots(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    def key(*extra: str) -> str:
        return finetune.adapter_dir(load_config("faquad", _sets(tmp_path, tiny_model_dir, *extra))).name

    assert key("finetune.length_window=8") != key("finetune.length_window=0")
    snap = ["finetune.recipe=mixed", "finetune.epochs=2", "finetune.snapshot_epochs=1"]
    snap.append("finetune.lr_scheduler=constant_with_warmup")
    load_config("faquad", _sets(tmp_path, tiny_model_dir, *snap))  # valid without grouping
    with pytest.raises(BenchError, match="length_window=0"):
        load_config("faquad", _sets(tmp_path, tiny_model_dir, *snap, "finetune.length_window=8"))


def test_default_profile_has_nothing_to_pad() -> None:
    """The default trains one record per step (the dose sweep's choice), so no batch pads and the records
    keep their built order; a profile with batch > 1 groups by length with finetune.length_window."""
    ft = load_config(None).finetune
    assert ft.batch_size == 1 and ft.length_window == 0
    assert load_config("smoke").finetune.length_window == 0  # its committed baseline was trained in order
