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
from bench.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

DIR = Path("probes")


def probe_key(run: Any) -> str:
    """Hash of everything the base model's probe depends on (``run`` is finetune's ``_Run``, its records and
    answer items built)."""
    import torch

    cfg = run.cfg
    inputs = {
        "model": artifacts.model_identity(cfg),
        "quantization": cfg.finetune.quantization,
        "bf16": bool(run.use_bf16),
        "block": cfg.finetune.max_length,
        "texts": run.data.probe_texts,
        "answers": [[str(it["id"]), it["prompt"], it["answer"]] for it in run.answer_items],
        "device": cfg.device,
        "torch": torch.__version__,
        "version": 1,  # bump when the probe's arithmetic changes
    }
    blob = json.dumps(inputs, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_probe(
    run: Any, probe: Callable[[Any], dict[str, Any]], items: Callable[[], None]
) -> dict[str, Any]:
    """``probe(run)`` of the base model, from the cache when an identical one was stored. ``items`` builds
    ``run.answer_items`` first (the key covers them)."""
    items()
    path = Path(run.cfg.results_path) / DIR / f"before-{probe_key(run)}.json"
    if path.exists():
        try:
            found = read_json(path)
        except (OSError, ValueError):
            found = None
        if isinstance(found, dict):
            log.info("base-model probe reused from %s", path)
            return found
    out = probe(run)
    atomic_write_json(path, out)
    return out
