"""Fine-tuning recipe names (``finetune.recipe``, described in :mod:`bench.training.recipes`) and the
``[finetune]`` settings that name an adapter. Ground level: :mod:`bench.artifacts` keys the adapter by them
and the training stage builds its records by them, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

from bench.config import BenchError, FinetuneConfig, config_to_dict

SCHEDULED = ("cpt", "mixed", "pit", "aug")
LEGACY = ("text", "instruct", "qa", "raft")
RECIPES = (*SCHEDULED, *LEGACY)
PAGE_PARTS = ("lead_section", "lead", "page")
# not in a legacy recipe's key
NEW_KEYS = ("recipe", "page_part", "qa_pairs", "pit_qa_epochs", "augment", "order")
AUG_TEXTS = 8  # recipe aug with finetune.augment = 0: augmented texts per page (bench/training/augment.py)
AUGMENTED = ("aug", "mixed", "pit")  # the recipes finetune.augment applies to
BOOKKEEPING = ("logging_steps", "save_steps", "train_questions", "snapshot_epochs")  # same weights either way


def recipe_of(ft: FinetuneConfig) -> str:
    """``finetune.recipe``, checked (the deprecated ``train_format`` is renamed on load: bench.config)."""
    name = ft.recipe
    if name not in RECIPES:
        raise BenchError(f"unknown finetune.recipe {name!r}; use one of {', '.join(RECIPES)}")
    if name in SCHEDULED and ft.page_part not in PAGE_PARTS:
        raise BenchError(f"unknown finetune.page_part {ft.page_part!r}; use one of {', '.join(PAGE_PARTS)}")
    return name


def augment_of(ft: FinetuneConfig) -> int:
    """Augmented texts per trained page: ``finetune.augment`` for ``mixed``/``pit`` (0 = none), that or
    :data:`AUG_TEXTS` for ``aug``; 0 for every other recipe (config_checks refuses augment > 0 there)."""
    recipe = recipe_of(ft)
    if recipe == "aug":
        return ft.augment or AUG_TEXTS
    return ft.augment if recipe in AUGMENTED else 0


def uses_pages(recipe: str) -> bool:
    return recipe in ("text", "instruct", *SCHEDULED)


def uses_questions(recipe: str) -> bool:
    return recipe in ("qa", "raft", "mixed", "pit")


def recorded_recipe(finetune: dict[str, Any]) -> str:
    """The recipe of a recorded ``config.finetune`` (scores.json): results written before the deprecated
    ``train_format`` key was renamed on load say ``recipe = ""`` and name their recipe there."""
    return str(finetune.get("recipe") or finetune.get("train_format") or "")


def key_fields(ft: FinetuneConfig) -> dict[str, Any]:
    """The ``[finetune]`` settings that shape the adapter, with the recipe spelled one way (the adapters
    trained before recipes existed keep their key), and a setting a recipe ignores left out."""
    recipe = recipe_of(ft)
    out = {k: v for k, v in config_to_dict(ft).items() if k not in BOOKKEEPING}
    if not out.get("page_chunks"):  # 0 = every chunk: the adapters before the key existed
        out.pop("page_chunks", None)
    if out.get("lr_scheduler") == "linear":  # the schedule every adapter had before the key existed
        out.pop("lr_scheduler")
    for k in NEW_KEYS:
        out.pop(k)
    if recipe in LEGACY:  # exactly the key the adapter had before recipes existed
        out["train_format"] = recipe
        return out
    out.update(recipe=recipe, page_part=ft.page_part)
    if uses_questions(recipe):
        out["qa_pairs"] = ft.qa_pairs
    if recipe == "pit":
        out["pit_qa_epochs"] = ft.pit_qa_epochs
    if augment_of(ft):  # absent at 0: the adapters before the key existed keep their key
        out["augment"] = augment_of(ft)
    if ft.order != "shuffle":  # absent when shuffled: the adapters before the key existed keep their key
        out["order"] = ft.order
    return out
