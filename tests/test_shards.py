"""bench run over several processes: --shard i/n + bench merge, torchrun, and a killed shard resuming."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import main
from bench.config import BenchError, Config, load_config
from bench.core.dist import Shard, parse_shard, pick_shard
from bench.eval import runner, shards
from bench.eval.stages import default_stages
from tests.fictional import write_corpus

REPO = Path(__file__).resolve().parent.parent
NO_MODEL = ["echo", "picker_oracle", "span_oracle", "picker_rag", "span_rag"]
VARIANTS = ["base", *NO_MODEL]


def _sets(tmp: Path, model: Path, dump: Path, questions: Path) -> list[str]:
    return [
        f"model.name={model}", "model.backend=transformers", "model.dtype=float32", "model.max_new_tokens=6",
        "model.threads=1", "model.batch_size=1", f"corpus={dump}", f"questions={questions}",
        f"results_dir={tmp / 'results'}", "split=", "index.embedder=hashing", "index.embedder_model=32",
        "index.chunk_tokens=64", "index.chunk_overlap=8", "run.bootstrap_samples=50",
        "run.latency_probe=0", f"run.variants={','.join(VARIANTS)}",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[list[str], Path]:
    """(the --set items of the run, the single-process run directory)."""
    tmp = tmp_path_factory.mktemp("shards")
    sets = _sets(tmp, tiny_model_dir, *write_corpus(tmp))
    single = runner.run(load_config("faquad", sets), out_dir=tmp / "single", shard=Shard())
    return sets, single


def rows_of(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (run_dir / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in rows:
        r.pop("latency")  # measured time: the only field that differs between two runs of the same answers
    return rows


MEASURED = ("latency_p50_ms", "latency_p95_ms", "tokens_per_s", "peak_rss_mb", "peak_vram_mb")
MEASURED_APART = ("single_latency_ms", "throughput")  # timed by the runner; a merge keeps the latency only


def headline(run_dir: Path) -> dict[str, Any]:
    """scores.json less what is measured (time, memory) or stamped (created)."""
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    for s in scores["variants"].values():
        for m in MEASURED:
            s.pop(m)
        for m in MEASURED_APART:
            s.pop(m, None)
    scores.pop("created")
    scores["env"].pop("generator")
    return scores


def test_shard_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    items = list(range(24))
    parts = [Shard(i, 5).select(items) for i in range(5)]
    assert sorted(x for p in parts for x in p) == items and parts[1] == [1, 6, 11, 16, 21]
    assert parse_shard("1/4") == Shard(1, 4) and Shard(1, 4).suffix == ".shard-1-of-4"
    for bad in ("4/4", "a/b", "1", "-1/2"):
        with pytest.raises(BenchError, match="shard"):
            parse_shard(bad)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert pick_shard(None) == Shard(1, 2, launched=True)
    with pytest.raises(BenchError, match="one or the other"):
        pick_shard("0/2")


def test_shards_then_merge_equal_the_single_run(setup: tuple[list[str], Path], tmp_path: Path) -> None:
    sets, single = setup
    out = tmp_path / "sharded"
    args = ["--profile", "faquad", *(x for s in sets for x in ("--set", s)), "-o", str(out)]
    assert main(["run", *args, "--shard", "1/2"]) == 0
    assert not (out / "answers.jsonl").exists()  # a shard writes its cache only
    with pytest.raises(BenchError, match=r"answers missing.*shard 0/2"):
        shards.merge(shards.load_merge_config([out], None), [out])
    assert main(["run", *args, "--shard", "0/2"]) == 0
    assert sorted(p.name for p in (out / "cache").glob("base*.jsonl")) == [
        "base.shard-0-of-2.jsonl",
        "base.shard-1-of-2.jsonl",
    ]
    assert main(["merge", str(out)]) == 0  # the config comes from cache/config.toml
    assert rows_of(out) == rows_of(single)  # same rows, same order, no duplicates (model rows too: batch 1)
    assert headline(out) == headline(single)


class CountingStages:
    """The real stages, with every generation counted."""

    def __init__(self) -> None:
        self.calls = 0
        real = default_stages()

        def make_generators(cfg: Config, adapter: Path | None) -> dict[str, Any]:
            gens = real.make_generators(cfg, adapter)
            for gen in gens.values():
                original = gen.generate

                def counted(*a: Any, _orig: Any = original, **kw: Any) -> Any:
                    self.calls += 1
                    return _orig(*a, **kw)

                gen.generate = counted
            return gens

        self.stages = dataclasses.replace(real, make_generators=make_generators)


def test_a_killed_shard_resumes_from_its_cache(setup: tuple[list[str], Path], tmp_path: Path) -> None:
    sets, single = setup
    cfg = load_config("faquad", [*sets, "run.variants=base"])
    out = tmp_path / "killed"
    runner.run(cfg, out_dir=out, shard=Shard(1, 2))
    cache = out / "cache" / "base.shard-1-of-2.jsonl"
    lines = cache.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) == 12
    cache.write_text("".join(lines[:5]) + '{"key": "torn', encoding="utf-8")  # killed mid-write
    counting = CountingStages()
    runner.run(cfg, out_dir=out, shard=Shard(1, 2), stages=counting.stages)
    assert counting.calls == 12 - 5  # the 5 cached rows are reused
    runner.run(cfg, out_dir=out, shard=Shard(0, 2))
    assert main(["merge", str(out)]) == 0
    base_single = [r for r in rows_of(single) if r["variant"] == "base"]
    assert rows_of(out) == base_single
    (out / "answers.jsonl").unlink()
    plain = CountingStages()  # a one-process run over the shards' directory merges them, answering nothing
    runner.run(cfg, out_dir=out, shard=Shard(), stages=plain.stages)
    assert plain.calls == 0 and rows_of(out) == base_single


@pytest.mark.slow  # two torch ranks over gloo: slow, and contended by anything else on 2 cores
def test_torchrun_two_ranks(setup: tuple[list[str], Path], tmp_path: Path) -> None:
    sets, single = setup
    out = tmp_path / "torchrun"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "bench", "run", "--profile", "faquad", *(x for s in sets for x in ("--set", s))]
    proc = subprocess.run(
        [*cmd, "-o", str(out)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 1/2 waiting at the bench run barrier" in proc.stderr
    rows, ref = rows_of(out), rows_of(single)
    pairs = [(r["variant"], r["question_id"]) for r in rows]
    assert pairs == [(r["variant"], r["question_id"]) for r in ref] and len(set(pairs)) == 24 * len(VARIANTS)
    assert [r for r in rows if r["variant"] in NO_MODEL] == [r for r in ref if r["variant"] in NO_MODEL]
    closed = [(a["answer"], b["answer"]) for a, b in zip(rows, ref, strict=True) if a["variant"] == "base"]
    same = sum(a == b for a, b in closed)
    assert same >= 0.9 * len(closed), f"closed-book answers identical: {same}/{len(closed)}"


def test_artifact_lock_takes_turns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The flock that shards and sweep jobs take around a shared artifact: the second waits for the first."""
    import threading
    import time

    from bench.core.dist import file_lock

    order: list[str] = []
    lock = tmp_path / "locks" / "index-abc.lock"
    held = threading.Event()

    def first() -> None:
        with file_lock(lock, "the index artifact abc"):
            held.set()
            time.sleep(0.5)
            order.append("first built")

    t = threading.Thread(target=first)
    t.start()
    assert held.wait(timeout=60), "the first lock holder never started"
    with caplog.at_level("INFO"), file_lock(lock, "the index artifact abc"):
        order.append("second found it")
    t.join()
    assert order == ["first built", "second found it"]
    assert "waiting for another process building the index artifact abc" in caplog.text
