"""bench finetune under ``accelerate launch --multi_gpu --num_processes 2`` on a CPU (accelerate's torchrun
path; gloo, as SFTConfig's use_cpu is set off CUDA): one adapter, written by rank 0, under the same key as one
process with the same global configuration; the metadata and the log state world size 2.

(``accelerate launch --cpu --num_processes 2`` starts ONE process in accelerate 1.x: its multi-CPU mode goes
through mpirun and a hostfile; docs/scale.md.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import BenchError, load_config
from bench.training import finetune
from tests.fictional import write_corpus

REPO = Path(__file__).resolve().parent.parent


def _sets(results: Path, model: Path, corpus: Path) -> list[str]:
    return [
        f"model.name={model}", f"corpus={corpus}", f"results_dir={results}", "min_text_chars=10",
        "finetune.max_length=64", "finetune.batch_size=2", "max_steps=4", "logging_steps=1", "save_steps=4",
        "warmup_steps=0", "lora_r=4", "lora_dropout=0", "val_fraction=0", "finetune.scope=corpus",
        "finetune.epochs=0", "finetune.bf16=false", "finetune.probe=false", "model.threads=1",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # two torch ranks over gloo: slow, and contended by anything else on 2 cores
def test_accelerate_two_cpu_ranks_train_one_adapter(tmp_path: Path, tiny_model_dir: Path) -> None:
    dump, _ = write_corpus(tmp_path)
    single_sets = _sets(tmp_path / "one", tiny_model_dir, dump)
    single = finetune.run_finetune(load_config("faquad", single_sets))
    ddp_sets = _sets(tmp_path / "two", tiny_model_dir, dump)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", str(free_port())]
    cmd = [
        *launch,
        "-m",
        "bench",
        "finetune",
        "--profile",
        "faquad",
        *(x for s in ddp_sets for x in ("--set", s)),
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "trained on world size 2" in proc.stderr
    adapters = [p for p in (tmp_path / "two" / "finetune").iterdir() if p.is_dir()]
    assert [p.name for p in adapters] == [single.name]  # one adapter, under the single-process key
    two = adapters[0]
    assert (two / "adapter_model.safetensors").exists() and not (two / "checkpoints").exists()
    meta = json.loads((two / finetune.METADATA).read_text(encoding="utf-8"))
    one = json.loads((single / finetune.METADATA).read_text(encoding="utf-8"))
    assert (meta["world_size"], meta["per_device_batch_size"], meta["global_batch_size"]) == (2, 1, 2)
    assert (one["world_size"], one["per_device_batch_size"], one["global_batch_size"]) == (1, 2, 2)
    assert meta["steps"] == one["steps"] == 4 and meta["hash_key"] == one["hash_key"]
    # the trainer gathers the token count over the ranks: the same records as one process, the same sum
    assert meta["tokens_seen"] == one["tokens_seen"] > 0
    assert proc.stdout.count("adapter: ") == 2  # every rank returns the finished adapter


def test_a_batch_that_does_not_split_over_the_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(BenchError, match="does not split over 4 ranks"):
        finetune._per_device_batch(2)
    assert finetune._per_device_batch(8) == 2


def test_accelerate_cpu_launch_of_one_process_is_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What ``accelerate launch --cpu --num_processes 2`` sets without mpirun: one process, no WORLD_SIZE."""
    from bench.core.dist import warn_one_process_launch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with caplog.at_level("WARNING"):
        assert warn_one_process_launch()
    assert "--multi_gpu --num_processes N" in caplog.text
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not warn_one_process_launch()
