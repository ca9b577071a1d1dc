"""README claims about defaults are pinned to the profiles: change a default and this fails until the README
says the same."""

from __future__ import annotations

import re
from pathlib import Path

from bench.config import load_config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
FLAT = " ".join(README.split())  # prose wraps: compare with line breaks folded


def _default_cell(role: str) -> str:
    match = re.search(rf"^\| {role} \| ([^|]+) \|", README, re.MULTILINE)
    assert match, f"README has no '| {role} |' row in its models table"
    return match.group(1)


def test_models_table_names_the_default_profile() -> None:
    cfg = load_config("default")
    assert f"`{cfg.model.name}`" in _default_cell("generator")
    assert f"`{cfg.model.backend}`" in _default_cell("backend")
    assert f"`{cfg.index.embedder}`" in _default_cell("embedder")


def _ft_arm_names_the_headline_adapter() -> None:
    """The ft-arm block is rendered from the headline run (the study once committed): it names that run's
    recipe, and when the committed study trained another adapter than the study profile's, the README says
    the study at the chosen point is not measured yet (bench/eval/dose_study.py)."""
    import json

    from bench.recipe_keys import recorded_recipe

    root = Path(__file__).resolve().parent.parent / "results" / "runs"
    run = root / "study" if (root / "study" / "scores.json").exists() else root / "default"
    recorded = json.loads((run / "scores.json").read_text(encoding="utf-8"))["config"]["finetune"]
    assert f"recipe `{recorded_recipe(recorded)}`" in FLAT
    if run.name == "study" and recorded_recipe(recorded) != load_config("study").finetune.recipe:
        assert (
            "At scale: not measured yet — the committed study run (results/runs/study) trained another"
            in FLAT
        )


def test_profiles_paragraph_and_reader_match_the_default_profile() -> None:
    cfg = load_config("default")
    corpus = Path(cfg.corpus.split(",")[0]).name
    assert f"`default` (`make bench`: {cfg.limit} ptwiki {cfg.split} fact questions over `{corpus}`;" in FLAT
    exposures = round(cfg.finetune.epochs * 10)  # aug: 10 records per page and pass
    study = round(load_config("study").finetune.epochs * 10)
    assert (
        cfg.finetune.recipe == "aug"
        and f"the chosen fine-tuning at {exposures} of its {study} exposures" in FLAT
    )
    assert f"{cfg.limit} {cfg.split} fact questions" in FLAT and f"over `corpora/{corpus}`" in FLAT
    assert cfg.index.retrieval == "hybrid" and "hybrid retrieval" in FLAT
    _ft_arm_names_the_headline_adapter()
    assert f"≤ {cfg.model.max_new_tokens} new tokens" in FLAT
    assert f"{cfg.model.fewshot} FaQuAD-*train* examples" in FLAT
    assert cfg.model.reader == "extractive" and cfg.model.stop_at_newline
    smoke = load_config("smoke")
    assert f"`smoke` (20 questions over `{Path(smoke.corpus).name}`, CI)" in FLAT
    facts = load_config("facts")
    assert f"`facts`: {facts.limit} {facts.split} fact probes" in FLAT


def test_readme_is_short_and_has_the_sections_a_new_user_needs() -> None:
    assert len(README.splitlines()) <= 200
    for heading in (
        "## Requirements",
        "## Quick start",
        "### Install without make",
        "## Current results",
        "### How to read the table",
        "## Bring your own",
        "## Where the rest lives",
    ):
        assert f"\n{heading}" in README, heading
    for needle in (
        "Python 3.11",
        "make bench",
        "make test",
        "ptwiki-latest-pages-articles.xml.bz2",
        "PTWIKI_BENCH_DATA",
        "qdrant_url",
        "langchain_retriever",
        "--device cuda",
    ):
        assert needle in README, needle
    for page in re.findall(r"\]\((docs/[\w.-]+\.md)\)", README):  # every linked page exists
        assert (Path(__file__).resolve().parent.parent / page).exists(), page
