"""Model weights for the backends: GGUF models are converted once to a safetensors folder
(``results/models/<name>/hf/``) for transformers and peft, then loaded. Which weights ``model.name`` names
(the registry, local paths, HF ids) is :mod:`bench.model_registry`, below every stage.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.io import atomic_write_json, peak_rss_mb
from bench.model_registry import resolve_model

log = logging.getLogger(__name__)

HF_MARKER = "bench_converted.json"  # written last into a converted folder


def gguf_file(cfg: Config) -> Path:
    """The GGUF that llama.cpp loads; BenchError for HF-only models."""
    spec = resolve_model(cfg)
    if spec.gguf_path is None:
        raise BenchError(f"model {spec.name!r} has no GGUF file; use model.backend=transformers")
    return spec.gguf_path


def ensure_hf_model(cfg: Config) -> Path:
    """A transformers folder (or HF id) for the model; GGUF models are dequantised once into safetensors."""
    spec = resolve_model(cfg)
    if spec.gguf_path is None:
        return spec.hf_dir if spec.hf_dir is not None else Path(spec.name)
    assert spec.hf_dir is not None
    out = spec.hf_dir
    if (out / HF_MARKER).exists():
        return out
    convert_gguf(spec.gguf_path, out)
    return out


def convert_gguf(gguf: Path, out: Path) -> dict[str, Any]:
    """Dequantise a GGUF with transformers and save safetensors + tokenizer; the marker is written last."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if out.exists():
        shutil.rmtree(out)  # a half-written folder (no marker) is redone
    t0 = time.perf_counter()
    log.info("converting %s to safetensors in %s (once; this takes a minute)", gguf.name, out)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as exc:  # transformers raises many types for unsupported GGUF architectures
        raise BenchError(f"cannot convert {gguf}: {type(exc).__name__}: {exc}") from exc
    # The GGUF quantizer marker blocks save_pretrained and training; the weights are already dequantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "_is_quantized_training_enabled"):
        if attr in vars(model):
            setattr(model, attr, False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    info = {
        "source": str(gguf),
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "params": sum(p.numel() for p in model.parameters()),
        "transformers": package_version("transformers"),
    }
    atomic_write_json(out / HF_MARKER, info)
    log.info("converted %s in %.1fs (peak RSS %.0f MB)", gguf.name, info["seconds"], info["peak_rss_mb"])
    return info


def package_version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


# --------------------------------------------------------------------------- loading


def torch_dtype(name: str) -> Any:
    import torch

    table = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
    if name not in table:
        raise BenchError(f"unknown dtype {name!r}; use one of {', '.join(table)}")
    return table[name]


def train_dtype_name(cfg: Config) -> str:
    return "bfloat16" if cfg.finetune.bf16 else "float32"


def load_model(
    cfg: Config, adapter: Path | None = None, for_training: bool = False, quantization: str = "none"
) -> tuple[Any, Any]:
    """(model, tokenizer). dtype: cfg.model.dtype for inference, float32 for training (bf16 if
    cfg.finetune.bf16). quantization "nf4" loads 4-bit weights with bitsandbytes (QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device=cuda but CUDA is not available; use --set device=cpu")
    src = ensure_hf_model(cfg)
    dtype = torch_dtype(train_dtype_name(cfg) if for_training else cfg.model.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": cfg.model.attn_implementation}
    if quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": 0} if cfg.device == "cuda" else {"": "cpu"}
    elif quantization != "none":
        raise BenchError(f"unknown quantization {quantization!r}; use none or nf4")
    try:
        tok = AutoTokenizer.from_pretrained(src, trust_remote_code=False)
        model: Any = AutoModelForCausalLM.from_pretrained(src, trust_remote_code=False, **kwargs)
    except OSError as exc:
        raise BenchError(f"cannot load model {cfg.model.name!r} from {src}: {exc}".splitlines()[0]) from exc
    if quantization == "none" and cfg.device != "cpu":
        model = model.to(cfg.device)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").exists():
            raise BenchError(f"no LoRA adapter in {adapter} (adapter_config.json missing)")
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=for_training)
    if not for_training:
        model.eval()
    return model, tok
