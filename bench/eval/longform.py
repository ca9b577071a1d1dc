"""Long-form questions: the run's pages asked about in sentences, so answer language is measured per variant.

Fact questions are answered with a year or a place name: too short for any language classifier (the short
answers' language is "und"), so a fact run cannot tell a reader that answers in English from one that
answers in Portuguese. ``run.longform_pages = N`` turns a run into its long-form twin: one open question
per page of the run's own questions (the first N pages, in question order), "Quem foi X?" ("O que é X?"
for a municipality), read with the ``longform`` reader (one or two full sentences, no worked examples, no
cut at the first line, ``run.longform_tokens`` new tokens) by the model variants only. Gold answers are
every fact the run asks about that page, so ``contains`` says whether the sentences state one of them.

The adapter is the fact run's own: its key is computed from the fact run's config (the questions, limit and
reader that picked its training pages), so ``make bench`` trains once and both runs share it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from bench.config import BenchError, Config
from bench.eval.stages import Stages
from bench.eval.variants import VariantSpec

log = logging.getLogger(__name__)

READER = "longform"
PERSON = "Quem foi {title}?"
LIVING = "Quem é {title}?"
PLACE = "O que é {title}?"


def _question(title: str, relations: set[str]) -> str:
    if "municipality_state" in relations:
        return PLACE.format(title=title)
    return (PERSON if relations & {"death_year", "death_place"} else LIVING).format(title=title)


def longform_questions(rows: list[dict[str, Any]], pages: int) -> list[dict[str, Any]]:
    """One open question per page of ``rows`` (the first ``pages`` pages in order); gold: its facts."""
    by_page: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        title = row.get("title")
        if not title:
            raise BenchError(f"run.longform_pages: question {row['id']!r} has no 'title' to ask about")
        by_page.setdefault(str(title), []).append(row)
    out = []
    for title, page_rows in list(by_page.items())[:pages]:
        first = page_rows[0]
        answers = list(dict.fromkeys(a for r in page_rows for a in r["answers"]))
        relations = {str(r.get("relation") or "") for r in page_rows}
        out.append(
            {
                "id": f"longform-{first['id']}",
                "question": _question(title, relations),
                "answers": answers,
                "title": title,
                "context": first.get("context", ""),
                "split": first.get("split"),
                "lang": "pt",
                "relation": "longform",
                "stratum": first.get("stratum"),
                "article_id": first.get("article_id"),
                "source": "longform",
                "facts": sorted(relations - {""}),
            }
        )
    return out


def longform_config(cfg: Config) -> Config:
    """The config the long-form answers are generated and keyed under (the model section is in every
    answer's key). No latency probe: per-question latency is the fact run's measurement."""
    model = dataclasses.replace(
        cfg.model,
        reader=READER,
        fewshot=0,
        stop_at_newline=False,
        max_new_tokens=cfg.run.longform_tokens,
    )
    return dataclasses.replace(cfg, model=model, run=dataclasses.replace(cfg.run, latency_probe=0))


def fact_run_stages(stages: Stages, fact_cfg: Config) -> Stages:
    """``stages`` whose adapter (its directory, key, training questions) is the fact run's."""
    return dataclasses.replace(
        stages,
        ensure_adapter=lambda _cfg: stages.ensure_adapter(fact_cfg),
        adapter_dir=lambda _cfg: stages.adapter_dir(fact_cfg),
        training_question_ids=lambda _cfg: stages.training_question_ids(fact_cfg),
        artifact_key=lambda cfg, stage: stages.artifact_key(fact_cfg if stage == "finetune" else cfg, stage),
    )


def prepare(
    cfg: Config, stages: Stages, specs: dict[str, VariantSpec], rows: list[dict[str, Any]]
) -> tuple[Config, Stages, dict[str, VariantSpec], list[dict[str, Any]]]:
    """The long-form twin of a run: its config, stages, model variants and questions."""
    kept = {name: spec for name, spec in specs.items() if spec.uses_model and not spec.edit}
    if dropped := sorted(set(specs) - set(kept)):
        log.info("long-form run: %s left out (no model reads a sentence answer there)", ", ".join(dropped))
    if not kept:
        raise BenchError("run.longform_pages: run.variants has no model variant to answer in sentences")
    questions = longform_questions(rows, cfg.run.longform_pages)
    log.info("long-form run: %d open questions (one per page) × %s", len(questions), ",".join(kept))
    return longform_config(cfg), fact_run_stages(stages, cfg), kept, questions
