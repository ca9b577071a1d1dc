"""LoRA training on the tiny model: loss goes down, adapter reloads and generates, reuse, resume, leakage."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bench.config import BenchError, load_config
from bench.generation import models
from bench.training import finetune


def _cfg(tmp_path: Path, model: Path, corpus: Path, *extra: str):  # type: ignore[no-untyped-def]
    return load_config(
        "faquad",
        [
            f"model.name={model}",
            f"corpus={corpus}",
            f"results_dir={tmp_path / 'results'}",
            "min_text_chars=10",
            "finetune.max_length=64",
            "finetune.batch_size=2",
            "max_steps=8",
            "logging_steps=1",
            "save_steps=4",
            "learning_rate=0.005",
            "warmup_steps=0",
            "lora_r=8",
            "lora_dropout=0",
            "val_fraction=0",
            "finetune.scope=corpus",
            "finetune.epochs=0",
            "finetune.bf16=false",
            *extra,
        ],
    )


def test_train_reload_generate_and_reuse(
    tmp_path: Path,
    tiny_model_dir: Path,
    tiny_dump: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = _cfg(tmp_path, tiny_model_dir, tiny_dump)
    out = finetune.run_finetune(cfg)
    assert out == finetune.adapter_dir(cfg) and out.parent == tmp_path / "results" / "finetune"
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    assert (out / "tokenizer.json").exists() and not (out / "checkpoints").exists()
    meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["steps"] == 8 and meta["quantization"] == "none"
    assert meta["precision"].startswith("lora: float32") and "qlora" not in meta["precision"]
    assert meta["data"]["format"] == "text" and meta["data"]["train_records"] >= 1
    assert meta["tokens_per_s"] > 0 and meta["versions"]["peft"]
    assert meta["peak_rss_mb"] > 200  # torch and the model alone take more
    curve = [p["loss"] for p in meta["loss_curve"]]
    assert len(curve) == 8
    assert curve[-1] < curve[0] - 0.3 and curve == sorted(
        curve, reverse=True
    )  # two tiny articles: every step sees the same batch, so loss must drop
    cfg_adapter = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert set(cfg_adapter["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }

    model, tok = models.load_model(cfg, adapter=out)
    ids = tok("Lisboa é", return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]

    def boom(*_a: object) -> Path:
        raise AssertionError("trained again")

    monkeypatch.setattr(finetune, "_train", boom)
    with caplog.at_level(logging.INFO, logger="bench.training.finetune"):
        assert finetune.ensure_adapter(cfg) == out
    assert "reusing adapter" in caplog.text
    other = _cfg(tmp_path, tiny_model_dir, tiny_dump, "lora_r=4")
    assert finetune.adapter_dir(other) != out  # hyper-parameters are part of the hash


def test_killed_run_resumes_from_checkpoint(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed in the middle of training (step 3 of 4, after the step-2 checkpoint): the rerun resumes from
    the checkpoint and trains only the remaining steps."""
    import trl

    cfg = _cfg(tmp_path, tiny_model_dir, tiny_dump, "max_steps=4", "save_steps=2")
    real_step = trl.SFTTrainer.training_step
    calls: list[int] = []

    def dies_at_step_3(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(trl.SFTTrainer, "training_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        finetune.run_finetune(cfg)
    out = finetune.adapter_dir(cfg)
    assert (out / "checkpoints" / "checkpoint-2").exists() and not (out / finetune.METADATA).exists()
    calls.clear()
    assert finetune.run_finetune(cfg) == out
    meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["resumed"] is True and meta["steps"] == 4
    assert len(calls) == 2  # steps 3 and 4 only: steps 1-2 came from the checkpoint
    assert not (out / "checkpoints").exists()


def test_qa_training_and_leakage(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, tiny_questions: Path
) -> None:
    q = [f"train_questions={tiny_questions}", f"questions={tiny_questions}", "recipe=qa", "max_steps=2"]
    with pytest.raises(BenchError, match="leakage"):
        finetune.run_finetune(_cfg(tmp_path, tiny_model_dir, tiny_dump, *q, "split="))
    cfg = _cfg(tmp_path, tiny_model_dir, tiny_dump, *q, "split=dev", "max_length=512")
    out = finetune.run_finetune(cfg)
    meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["trained_question_ids"] == ["q3"] and meta["data"]["chat_template"] is True
    assert meta["steps"] == 2


@pytest.mark.gpu
def test_qlora_on_cuda(tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path) -> None:
    cfg = _cfg(tmp_path, tiny_model_dir, tiny_dump, "device=cuda", "quantization=nf4", "max_steps=4")
    out = finetune.run_finetune(cfg)
    meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["precision"].startswith("qlora: 4-bit nf4") and meta["peak_vram_mb"] > 0
    from bench.training import gpu_probe as probe

    result = probe.qlora_probe(cfg, shape="default", steps=2)
    assert result["tokens_per_s"] > 0 and result["peak_vram_mb"] > 0


def test_qlora_probe_code_path_on_cpu(tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path) -> None:
    """The 7B probe's meta-device + per-layer nf4 construction, on a tiny shape and the CPU nf4 kernels."""
    from transformers import LlamaConfig

    from bench.training import gpu_probe as probe

    shape = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=300,
        max_position_embeddings=128,
    )
    cfg = _cfg(tmp_path, tiny_model_dir, tiny_dump, "device=cpu", "finetune.max_length=16")
    result = probe.qlora_probe(cfg, shape="7b", steps=2, model_config=shape)
    assert result["tokens_per_s"] > 0 and result["final_loss"] > 0 and result["peak_vram_mb"] is None
    big = probe.llama_7b_config()
    assert (big.hidden_size, big.num_hidden_layers, big.intermediate_size) == (4096, 32, 11008)


@pytest.mark.gpu
def test_qlora_probe_7b_on_cuda(tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path) -> None:
    from bench.training import gpu_probe as probe

    cfg = _cfg(tmp_path, tiny_model_dir, tiny_dump, "device=cuda", "finetune.max_length=256")
    result = probe.qlora_probe(cfg, shape="7b", steps=2)
    assert result["peak_vram_mb"] > 3000 and result["tokens_per_s"] > 0  # 7B in nf4 is ~3.5-4 GB of weights


def test_validation_loss_recorded(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.ingest.corpus import Article, Section
    from bench.training import sft_data

    arts = [
        Article(i, f"Cidade {i}", f"A cidade {i} fica junto ao rio.", (Section("", "x"),)) for i in range(12)
    ]
    monkeypatch.setattr(sft_data, "load_articles", lambda cfg: arts)
    cfg = _cfg(tmp_path, tiny_model_dir, tiny_dump, "val_fraction=0.3", "max_steps=1")
    meta = json.loads((finetune.run_finetune(cfg) / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["data"]["val_records"] >= 1 and meta["eval_loss"] > 0


def test_nf4_qlora_on_cpu_is_labelled_qlora(tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path) -> None:
    cfg = _cfg(tmp_path, tiny_model_dir, tiny_dump, "quantization=nf4", "max_steps=2")
    out = finetune.run_finetune(cfg)
    meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["quantization"] == "nf4" and meta["precision"].startswith("qlora: 4-bit nf4")
    assert out != finetune.adapter_dir(_cfg(tmp_path, tiny_model_dir, tiny_dump, "max_steps=2"))
    model, _ = models.load_model(cfg, adapter=out, quantization="nf4")
    assert type(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
