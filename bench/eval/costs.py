"""What each approach cost to build: the index behind the retrieval variants and the adapter behind the FT
variants, read from the artifacts the stages wrote (index ``manifest.json``, adapter ``train_metadata.json``)
into ``scores.json["costs"]`` so the report's cost table (:mod:`bench.reporting.costs`) is rendered from the
run's own file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bench.config import Config

log = logging.getLogger(__name__)

FINETUNE_FIELDS = (
    "coverage",  # evaluated / trained pages and questions (bench/training/coverage.py)
    "steps",
    "epochs",
    "epochs_requested",
    "scope",
    "pages",
    "views",
    "train_records",
    "train_tokens",
    "tokens_seen",
    "train_time_s",
    "wall_time_s",
    "s_per_step",
    "tokens_per_s",
    "peak_rss_mb",
    "peak_vram_mb",
    "train_loss",
    "precision",
    "device",
    "coverage",  # evaluated pages / questions with a training record (bench/training/coverage.py)
)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def index_cost(cfg: Config) -> dict[str, Any] | None:
    """Chunks, points and build seconds of the embedded index for ``cfg`` (None without a manifest)."""
    from bench.retrieval.index import index_identity

    path, _, _ = index_identity(cfg)
    manifest = _read(path / "manifest.json")
    if manifest is None:
        return None
    build = manifest.get("build") or {}
    return {
        "key": path.name,
        "embedder": manifest.get("embedder"),
        "chunks": (manifest.get("counts") or {}).get("chunks"),
        "points": (manifest.get("counts") or {}).get("points"),
        "build_s": build.get("seconds"),
        "embedded_chunks": build.get("embedded_chunks"),
    }


def finetune_cost(adapter: Path) -> dict[str, Any] | None:
    """Training cost and injection probe of the adapter in ``adapter`` (None without metadata)."""
    meta = _read(Path(adapter) / "train_metadata.json")
    if meta is None:
        return None
    out = {k: meta.get(k) for k in FINETUNE_FIELDS}
    curve = meta.get("loss_curve") or []
    out["key"] = Path(adapter).name
    out["loss_first"] = curve[0]["loss"] if curve else None
    out["loss_last"] = curve[-1]["loss"] if curve else None
    out["loss_curve"] = curve
    out["probe"] = {k: v for k, v in (meta.get("probe") or {}).items() if k not in ("before", "after")}
    return out


def build_costs(cfg: Config, uses_retrieval: bool, adapter: Path | None) -> dict[str, Any]:
    costs: dict[str, Any] = {}
    if uses_retrieval and not cfg.index.qdrant_url:
        costs["index"] = index_cost(cfg)
    if adapter is not None:
        costs["finetune"] = finetune_cost(adapter)
    return costs
