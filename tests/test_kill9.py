"""kill -9 at any point (issue 32): every stage (ingest, index, finetune, run, merge) is SIGKILLed at named
points (``BENCH_KILL_AT``, bench.io.crash_point) and run again; the rerun's artifacts and answers equal an
uninterrupted run's, and no temp file, held lock, checkpoint or half-written artifact is left behind."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fictional import write_corpus

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _sets(results: Path, model: Path, corpus: Path, questions: Path) -> list[str]:
    return [
        f"model.name={model}", f"corpus={corpus}", f"questions={questions}", f"results_dir={results}",
        "split=", "model.backend=transformers", "model.threads=1", "model.max_new_tokens=6",
        "model.batch_size=4", "index.embedder=hashing", "index.embed_batch_size=1", "index.chunk_tokens=40",
        "index.chunk_overlap=0",
        "min_text_chars=10", "finetune.max_length=64", "finetune.batch_size=2", "max_steps=6",
        "save_steps=2", "logging_steps=1", "warmup_steps=0", "lora_r=4", "lora_dropout=0", "val_fraction=0",
        "finetune.scope=corpus", "finetune.epochs=0", "finetune.bf16=false", "finetune.probe=false",
        "run.variants=base,rag,ft,ft_rag", "run.bootstrap_samples=50",
    ]  # fmt: skip


def bench(sets: list[str], *args: str, kill_at: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("BENCH_KILL_AT", None)
    if kill_at:
        env["BENCH_KILL_AT"] = kill_at
    cmd = [
        sys.executable,
        "-m",
        "bench",
        *args,
        "--profile",
        "faquad",
        *(x for s in sets for x in ("--set", s)),
    ]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr[-4000:]


def killed(proc: subprocess.CompletedProcess[str], point: str) -> None:
    assert proc.returncode == -9, f"not killed at {point}: rc {proc.returncode}\n{proc.stderr[-3000:]}"
    assert f"SIGKILL at {point.split('@')[0]}" in proc.stderr


def answers(run: Path) -> list[tuple[Any, ...]]:
    rows = [json.loads(x) for x in (run / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    return [(r["variant"], r["question_id"], r["answer"], r["error"]) for r in rows]


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def tensors(adapter: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def left_behind(results: Path) -> list[str]:
    """Temp files/dirs of killed writers, held locks, training checkpoints: nothing may be left."""
    bad = [str(p) for p in results.rglob(".*") if p.name.endswith((".tmp", ".tmpdir"))]
    bad += [str(p) for p in results.rglob("checkpoints") if p.is_dir()]
    for lock in [*results.rglob("*.lock"), *results.rglob("lock*")]:
        if lock.is_file():
            with lock.open("a") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    bad.append(f"held: {lock}")
    return bad


def test_every_stage_killed_and_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    dump, questions = write_corpus(tmp_path)
    ref, res = tmp_path / "ref", tmp_path / "killed"
    ref_sets, sets = (_sets(r, tiny_model_dir, dump, questions) for r in (ref, res))
    for stage in (("ingest",), ("index",), ("finetune",), ("run", "--output", str(ref / "run"))):
        ok(bench(ref_sets, *stage, cwd=tmp_path))

    plan = [
        (("ingest",), ["ingest.article@3", "atomic.rename@1"]),
        (("index",), ["index.batch@2", "atomic.rename@1"]),
        (
            ("finetune",),
            ["finetune.step@3", "finetune.save"],
        ),  # after checkpoint-2; between adapter and metadata
        (("run", "--output", str(res / "run")), ["run.answer@5", "run.answer@7", "atomic.rename@2"]),
    ]
    for stage, points in plan:
        for point in points:
            killed(bench(sets, *stage, kill_at=point, cwd=tmp_path), point)
        ok(bench(sets, *stage, cwd=tmp_path))

    assert only(res / "articles", "*.jsonl").read_bytes() == only(ref / "articles", "*.jsonl").read_bytes()
    ref_manifest = json.loads(only(ref / "index", "*/manifest.json").read_text(encoding="utf-8"))
    manifest = json.loads(only(res / "index", "*/manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == ref_manifest["counts"] and manifest["signature"] == ref_manifest["signature"]
    a, b = tensors(only(ref / "finetune", "*/")), tensors(only(res / "finetune", "*/"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a), "resumed adapter differs"
    assert answers(res / "run") == answers(ref / "run")  # RAG answers: the resumed index retrieves the same
    scores = [json.loads((r / "run" / "scores.json").read_text(encoding="utf-8")) for r in (ref, res)]
    assert scores[0]["variants"].keys() == scores[1]["variants"].keys()

    # merge: two --shard runs, then `bench merge` killed while writing its results
    shards = res / "sharded"
    for i in (0, 1):
        ok(bench(sets, "run", "--output", str(shards), "--shard", f"{i}/2", cwd=tmp_path))
    env_sets = sets
    killed(bench(env_sets, "merge", str(shards), kill_at="atomic.rename@1", cwd=tmp_path), "atomic.rename@1")
    ok(bench(env_sets, "merge", str(shards), cwd=tmp_path))
    assert sorted(answers(shards)) == sorted(answers(ref / "run"))
    assert left_behind(res) == []
