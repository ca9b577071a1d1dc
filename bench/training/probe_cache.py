"""The injection probe of the *base* model, computed once and reused by every adapter trained on it.

The "before" probe (page perplexities and the answer NLL of every evaluated question) is a function of the
base weights, the probe's texts and prompts, the precision and the block length only — not of the recipe,
the budget or anything else that shapes an adapter. A sweep over recipes and budgets trained on the same
base model and questions (`make ft-curves`: nine adapters) computed it nine times; it is stored under
``results/probes/before-<hash>.json`` (beside the adapters' folder, not in it), keyed by all of
those inputs, and read back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import artifacts
from bench.config import Config
from bench.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

DIR = Path("probes")


def probe_key(cfg: Config, bf16: bool, texts: dict[str, str], answer_items: list[dict[str, Any]]) -> str:
    """Hash of everything the base model's probe depends on: the model, precision and block length, the
    probe ``texts`` and the answer probe's items."""
    import torch

    inputs = {
        "model": artifacts.model_identity(cfg),
        "quantization": cfg.finetune.quantization,
        "bf16": bool(bf16),
        "block": cfg.finetune.max_length,
        "texts": texts,
        "answers": [[str(it["id"]), it["prompt"], it["answer"]] for it in answer_items],
        "device": cfg.device,
        "torch": torch.__version__,
        "version": 1,  # bump when the probe's arithmetic changes
    }
    blob = json.dumps(inputs, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_probe(cfg: Config, key: str, probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``probe()`` of the base model, from the cache when one with the same :func:`probe_key` was stored."""
    path = Path(cfg.results_path) / DIR / f"before-{key}.json"
    if path.exists():
        try:
            found = read_json(path)
        except (OSError, ValueError):
            found = None
        if isinstance(found, dict):
            log.info("base-model probe reused from %s", path)
            return found
    out = probe()
    atomic_write_json(path, out)
    return out
