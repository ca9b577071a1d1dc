"""Fine-tuning recipes (``finetune.recipe``): what the adapter trains on, and in which order.

* ``cpt``: continued pre-training on the pages of ``finetune.scope`` (the evaluation questions' pages by
  default), each in the views of ``finetune.views`` (plain, titled, permuted, windows); ``finetune.page_part``
  ``lead`` (default) trains on the lead only (the facts are there; CPU tokens are the budget),
  ``lead_section`` on the lead and the first section, ``page`` on the whole page;
* ``mixed``: ``cpt`` plus question → answer pairs about *train-split* entities, in the evaluation's prompt,
  shuffled together every epoch (Allen-Zhu & Li, Physics of LMs 3.1: stored facts become extractable when the
  model also sees QA about other entities);
* ``pit``: pre-instruction-tuning (Jiang et al. 2024): ``pit_qa_epochs`` passes over the QA pairs first,
  then the pages and the QA pairs together;
* ``aug``: ``cpt`` plus ``finetune.augment`` (default 8) texts per page restating its facts in other
  templates and orders (:mod:`bench.training.augment`); ``mixed``/``pit`` take the same texts with
  ``augment`` > 0 (``pit``: QA first, then the augmented pages with the QA);
* ``qa`` / ``raft``: question → span records only (closed-book / with passages), as before;
* ``text`` / ``instruct``: the formats before recipes (whole pages, trainer-shuffled), kept so the adapters
  trained before recipes existed stay reproducible (the deprecated key naming them: bench.config.ALIASES).

``cpt``, ``mixed``, ``pit`` and ``aug`` are *scheduled*: the whole ordered sequence of records is built
here (every epoch's order from the seed), trained front to back, and written as is by ``bench finetune
--dry-run``; their budget ``finetune.epochs`` is the number of exposures of each page record (an augmented
text is a page record; fractions take the first part of the last pass; ``finetune.order = "exposure"`` makes
a fraction a whole number of records per page: :func:`exposure_major`). The other recipes keep the
trainer's seeded shuffle over ``epochs`` passes. The recipe names
and the adapter-key fields are :mod:`bench.recipe_keys` (ground: the artifact keys use them).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.config import BenchError, FinetuneConfig


def page_part(article: Any, part: str) -> Any:
    """The article cut to ``part``: ``lead_section`` (lead + first section), ``lead`` or ``page`` (whole)."""
    if part == "page":
        return article
    sections = tuple(article.sections[: 2 if part == "lead_section" else 1])
    text = "\n\n".join(str(s.text or "") for s in sections if str(s.text or "").strip())
    return type(article)(article.id, article.title, text, sections)


# --------------------------------------------------------------------------- schedule


ORDERS = ("shuffle", "exposure")  # finetune.order


def exposure_major(order: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One pass regrouped by exposure: every page's first record in ``order``, then every page's second, …
    (each group in ``order``'s order), the records of no page (QA pairs) spread evenly between the groups,
    so the first ``e`` groups are ``e`` exposures of every page that has that many records."""
    groups: list[list[dict[str, Any]]] = []
    seen: Counter[str] = Counter()
    others = [r for r in order if r.get("part") != "page"]
    for rec in order:
        if rec.get("part") == "page":
            rank = seen[str(rec.get("title") or "")]
            seen[str(rec.get("title") or "")] += 1
            groups += [[] for _ in range(rank + 1 - len(groups))]
            groups[rank].append(rec)
    total = sum(len(g) for g in groups)
    out: list[dict[str, Any]] = []
    placed = done = 0
    for group in groups:
        out += group
        done += len(group)
        upto = round(len(others) * done / total)
        out += others[placed:upto]
        placed = upto
    return out + others[placed:]


def _passes(
    units: Sequence[dict[str, Any]], epochs: float, seed: int, phase: str, first: int = 0, order_by: str = ""
) -> list[dict[str, Any]]:
    """``epochs`` passes over ``units``, each pass in its own seeded order (the last one cut short);
    ``order_by`` "exposure" regroups each pass (:func:`exposure_major`)."""
    out: list[dict[str, Any]] = []
    for e in range(math.ceil(epochs)):
        order = list(units)
        random.Random(f"{seed}:{phase}:{first + e}").shuffle(order)
        if order_by == "exposure":
            order = exposure_major(order)
        take = len(order) if e + 1 <= epochs else round((epochs - e) * len(order))
        out.extend({**rec, "phase": phase, "epoch": first + e} for rec in order[:take])
    return out


def _epochs_for(need: int, unit: int) -> float:
    return float(math.ceil(need / unit)) if unit else 0.0


def schedule(
    recipe: str,
    pages: Sequence[dict[str, Any]],
    qa: Sequence[dict[str, Any]],
    ft: FinetuneConfig,
    seed: int,
) -> list[dict[str, Any]]:
    """The ordered training sequence of a scheduled recipe. ``epochs`` = passes over the page records
    (0: as many as ``max_steps`` needs); ``max_steps`` > 0 cuts the sequence to ``max_steps`` batches."""
    if ft.epochs < 0 or ft.max_steps < 0:
        raise BenchError(f"finetune.epochs={ft.epochs} and finetune.max_steps={ft.max_steps} must be >= 0")
    if ft.epochs == 0 and ft.max_steps == 0:
        raise BenchError("nothing to train: set finetune.epochs > 0 or finetune.max_steps > 0")
    need = ft.max_steps * ft.batch_size * ft.grad_accum
    head: list[dict[str, Any]] = []
    if recipe == "pit":
        head = _passes(qa, ft.pit_qa_epochs, seed, "qa")
    body_units = [*pages, *qa] if recipe in ("mixed", "pit") else list(pages)
    epochs = ft.epochs or _epochs_for(max(need - len(head), 0), len(body_units))
    phase = {"cpt": "pages", "aug": "pages", "mixed": "pages+qa", "pit": "pages+qa"}[recipe]
    out = head + _passes(body_units, epochs, seed, phase, order_by=ft.order)
    if ft.max_steps > 0:
        out = out[:need]
    if not out:
        raise BenchError(
            f"recipe {recipe}: the schedule is empty (epochs={ft.epochs}, max_steps={ft.max_steps})"
        )
    return out


def records_per_page(ft: FinetuneConfig) -> int:
    """Page records each page has in one pass (one per view, chunk and augmented text; ``page_chunks`` 0 =
    every chunk counts as one): the exposures of each page's facts per pass."""
    from bench import recipe_keys

    return len(ft.views) * max(ft.page_chunks, 1) + recipe_keys.augment_of(ft)


def page_exposures(records: Sequence[dict[str, Any]], unique_pages: int) -> float:
    """Passes over the page records that ``records`` (a trained prefix of the schedule) hold."""
    seen = sum(1 for r in records if r.get("part") == "page")
    return round(seen / unique_pages, 3) if unique_pages else 0.0
