"""``dose.json``: the dose sweep's points (bench/eval/dose.py) as numbers the report renders without
re-reading run folders or adapters (bench/reporting/dose_report.py). Each adapter's figures come from the
sweep's ledger (``points.json``: the committed copy of its training record), so a fresh clone summarizes
without the adapters.

Per subset and point: closed-book (FT) and FT+RAG EM with 95 % intervals, training tokens per evaluated page
(``tokens_seen`` over the adapter's ``coverage.evaluated_pages``), the answer-level NLL of this subset's
questions before / after training, the trained-record and held-out page NLLs, and three paired tests
(McNemar exact) against the untrained reference of the same subset: FT − base, FT − prior, FT+RAG − RAG, each
Holm-corrected over the points of the seed-0 grid (the family the choice is made from). The choice is made on
the selection subset only (highest FT EM; ties: fewer tokens per page); the report subset judges it.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.core.stats import holm
from bench.eval import dose, dose_study, fact_source
from bench.eval.hitmaps import compare, em_of, hits
from bench.io import atomic_write_json, read_json

DOSE = "dose.json"
# Where the augmented texts' facts come from (bench/training/augment.py question_facts), and how that compares
# with the page's own text (bench/eval/fact_source.py): a caveat every dose table carries, since it bears on
# what closed-book EM of an aug recipe means.
AUGMENT_NOTE = (
    "the augmented texts restate each page's (relation, answer) pairs as the question file holds them (every"
    " split, the evaluated questions' gold spans included). Read from each evaluated page's own text by the"
    " question generator's patterns and per-article checks, the pairs are the same on {identical} of {pages}"
    " pages ({facts} facts), so the texts state what a rule extractor finds in the page; but that extractor"
    " wrote the questions, so the texts restate exactly the relations asked, some in the statement form of a"
    " question template ('O ano de nascimento de X é Y.' beside 'Qual é o ano de nascimento de X?'): an upper"
    " bound for a user whose questions are not known when training"
)
COMPARISONS = {"ft-base": ("ft", "base"), "ft-prior": ("ft", "prior"), "ft_rag-rag": ("ft_rag", "rag")}
GOAL_EM = 0.30
EXPOSURE_NOTE = (
    "one exposure = one page record per evaluated page, each a statement of its facts (mixed: a view of its"
    " lead, with the QA pairs spread among them; aug and pit-aug: a view or one of 8 restatements), passes"
    " ordered by exposure (finetune.order = exposure); compare recipes on tokens per evaluated page"
)


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v == v]  # NaN-free
    return round(sum(vals) / len(vals), 4) if vals else None


def adapter_facts(meta: dict[str, Any], qids: list[str]) -> dict[str, Any]:
    """Cost and probe figures of one adapter (its train_metadata.json), the answer NLL over ``qids``."""
    probe = meta.get("probe") or {}
    cov = meta.get("coverage") or {}
    pages = int(cov.get("evaluated_pages") or 0)
    tokens = int(meta.get("tokens_seen") or 0)
    answers = {k: (probe.get(k) or {}).get("answers") or {} for k in ("before", "after")}
    return {
        "epochs": meta.get("epochs"),
        "steps": meta.get("steps"),
        "train_s": meta.get("train_time_s"),
        "tokens_seen": tokens,
        "pages": pages,
        "trained_pages": cov.get("trained_pages"),  # < pages: a budget below one record of every page
        "tokens_per_page": round(tokens / pages, 1) if pages else None,
        "answer_nll_before": _mean([answers["before"][q] for q in qids if q in answers["before"]]),
        "answer_nll_after": _mean([answers["after"][q] for q in qids if q in answers["after"]]),
        **{k: probe.get(k) for k in ("nll_trained_before", "nll_trained_after")},
        **{k: probe.get(k) for k in ("nll_heldout_before", "nll_heldout_after")},
    }


def point_record(
    plan: dose.Plan, subset: str, arm: str, budget: int, offset: int = 0, book: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One point's figures; ``book``: the sweep's ledger when the caller has read it already."""
    from bench.training.finetune import adapter_dir

    run = dose.point_dir(plan, subset, arm, budget, offset)
    ref = dose.point_dir(plan, subset, None)
    meta = ((dose.ledger(plan) if book is None else book).get(run.name) or {}).get("adapter")
    if meta is None:  # a point finished before the ledger: its adapter on this machine
        meta_path = adapter_dir(dose.train_config(plan, arm, budget, offset, snapshots=False))
        meta = read_json(meta_path / "train_metadata.json")
    mine = {v: hits(run, v) for v in dose.POINT_VARIANTS}
    rec: dict[str, Any] = {"name": run.name, "subset": subset, "arm": arm, "budget": budget, "seed": offset}
    rec.update(adapter_facts(meta, sorted(mine["ft"])))
    rec.update({v: em_of(h) for v, h in mine.items()})
    rec["vs"] = {c: compare(mine[a], hits(ref, b)) for c, (a, b) in COMPARISONS.items()}
    return rec


def add_holm(points: list[dict[str, Any]]) -> None:
    """``p_holm`` on each comparison, over the seed-0 points of one subset."""
    grid = [p for p in points if not p["seed"]]
    for c in COMPARISONS:
        for p, adj in zip(grid, holm([p["vs"][c]["p_value"] for p in grid]), strict=True):
            p["vs"][c]["p_holm"] = adj


def choose(selection: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest closed-book EM on the selection subset; a tie goes to fewer tokens per page."""
    grid = [p for p in selection if not p["seed"]]
    best = max(grid, key=lambda p: (p["ft"]["em"] or 0.0, -(p["tokens_per_page"] or 0.0)))
    return {k: best[k] for k in ("arm", "budget", "tokens_per_page")} | {"selection_em": best["ft"]["em"]}


def reached(report: list[dict[str, Any]], refs: dict[str, Any], budgets: tuple[int, ...]) -> dict[str, Any]:
    """Per arm, the smallest budget whose closed-book EM reaches GOAL_EM, the prior and RAG (None: not up to
    the largest budget)."""
    targets = {f"em {GOAL_EM:.2f}": GOAL_EM, "prior": refs["prior"]["em"], "rag": refs["rag"]["em"]}
    out: dict[str, Any] = {}
    for arm in sorted({p["arm"] for p in report}):
        pts = sorted((p for p in report if p["arm"] == arm and not p["seed"]), key=lambda p: p["budget"])
        out[arm] = {}
        for name, level in targets.items():
            hit = next((p for p in pts if level is not None and (p["ft"]["em"] or 0.0) >= level), None)
            out[arm][name] = (
                {"budget": hit["budget"], "tokens_per_page": hit["tokens_per_page"]} if hit else None
            )
    return out | {"largest_budget": max(budgets), "levels": targets}


def falling(points: list[dict[str, Any]], field: str) -> dict[str, bool]:
    """Per arm: does ``field`` (an NLL after training) fall with every larger budget, from before training?"""
    out = {}
    for arm in sorted({p["arm"] for p in points}):
        pts = sorted((p for p in points if p["arm"] == arm and not p["seed"]), key=lambda p: p["budget"])
        start = pts[0].get(field.replace("_after", "_before")) if pts else None
        seq = [start, *(p.get(field) for p in pts)]
        known = [float(x) for x in seq if x is not None]
        out[arm] = len(known) == len(seq) and all(b < a for a, b in itertools.pairwise(known))
    return out


def seed_spread(report: list[dict[str, Any]], chosen: dict[str, Any]) -> dict[str, Any]:
    """EM of every seed at the chosen point (report subset), with mean, sd, min and max."""
    pts = sorted(
        (p for p in report if p["arm"] == chosen["arm"] and p["budget"] == chosen["budget"]),
        key=lambda p: p["seed"],
    )
    out: dict[str, Any] = {"seeds": [p["seed"] for p in pts]}
    for v in dose.POINT_VARIANTS:
        ems = [p[v]["em"] for p in pts]
        out[v] = {
            "em": ems, "mean": round(statistics.fmean(ems), 4),
            "sd": round(statistics.stdev(ems), 4) if len(ems) > 1 else None,
            "min": min(ems), "max": max(ems),
        }  # fmt: skip
    return out


def summarize(plan: dose.Plan, seeds: bool = False) -> dict[str, Any]:
    """Every point on both subsets, the tests, the choice (and with ``seeds`` the extra seeds' spread)."""
    doc: dict[str, Any] = {
        "profile": plan.profile, "overrides": list(plan.overrides),
        "arms": {a: list(dose.ARMS[a]) for a in plan.arms},
        "budgets": list(plan.budgets), "report_limit": plan.report_limit, "exposure_note": EXPOSURE_NOTE,
    }  # fmt: skip
    book = dose.ledger(plan)
    for subset in dose.SUBSETS:
        ref_dir = dose.point_dir(plan, subset, None)
        refs = {v: em_of(hits(ref_dir, v)) for v in ("base", "prior", "rag", "span_rag")}
        pts = [point_record(plan, subset, a, b, book=book) for a in plan.arms for b in plan.budgets]
        add_holm(pts)
        doc[subset] = {"n": refs["base"]["n"], "reference": refs, "points": pts}
    doc["chosen"] = choose(doc["selection"]["points"])
    arm, budget = doc["chosen"]["arm"], doc["chosen"]["budget"]
    report = doc["report"]["points"]
    doc["chosen_on_report"] = next(p for p in report if p["arm"] == arm and p["budget"] == budget)
    doc["worse_on_report"] = {
        c: sorted(p["name"] for p in report if p["vs"][c]["diff"] < 0 and p["vs"][c].get("p_holm", 1) < 0.05)
        for c in COMPARISONS
    }
    doc["reached"] = reached(report, doc["report"]["reference"], plan.budgets)
    doc["trained_nll_falling"] = falling(report, "nll_trained_after")
    doc["answer_nll_falling"] = falling(report, "answer_nll_after")
    offsets = range(1, plan.seeds) if seeds else seeds_done(plan, book, arm, budget)
    if offsets:  # the full sweep's seeds, or those a partial sweep has in its ledger (--seeds-only)
        report += [point_record(plan, "report", arm, budget, s, book) for s in offsets]
        doc["seed_spread"] = seed_spread(report, doc["chosen"])
    doc["seeds_missing"] = plan.seeds - 1 - len(offsets)
    return doc


def seeds_done(plan: dose.Plan, book: dict[str, Any], arm: str, budget: int) -> list[int]:
    """The extra seeds (offsets 1 … ``plan.seeds`` - 1) whose report point at ``arm``/``budget`` is in the
    ledger."""
    return [s for s in range(1, plan.seeds) if dose.point_dir(plan, "report", arm, budget, s).name in book]


def finished_arms(plan: dose.Plan) -> tuple[str, ...]:
    """The arms (of every known one, in :data:`dose.ARMS` order) with every point of both subsets in the
    ledger: what a partial sweep can summarize."""
    book = dose.ledger(plan)
    grid = [(s, b) for s in dose.SUBSETS for b in plan.budgets]
    return tuple(a for a in dose.ARMS if all(dose.point_dir(plan, s, a, b).name in book for s, b in grid))


def write(plan: dose.Plan, seeds: bool = True) -> Path:
    """Summarize and write ``dose.json``; returns its path. Without ``seeds``: a partial sweep over the arms
    finished so far (on this machine or committed by another), the pending arms and seeds named in it."""
    arms = plan.arms if seeds else finished_arms(plan)
    if not arms:
        raise BenchError(f"dose: no recipe has all its points in {plan.root / dose.LEDGER} yet")
    doc = summarize(replace(plan, arms=arms), seeds=seeds)
    doc["pending"] = {"arms": [a for a in dose.ARMS if a not in arms], "seeds": doc.pop("seeds_missing")}
    titles = {str(q.get("title") or "") for s in dose.SUBSETS for q in dose.subset_questions(plan, s)}
    doc["fact_source"] = fact_source.audit(plan.base, titles)  # the corpus read once, for the file only
    doc["augment_note"] = AUGMENT_NOTE.format(**doc["fact_source"])
    doc["study"] = dose_study.section(plan, doc["chosen"])
    out = plan.root / DOSE
    atomic_write_json(out, doc)
    return out


def run(plan: dose.Plan, grid_only: bool = False, seeds_only: bool = False) -> Path:
    """The whole sweep, resumable: every point, the choice on the selection subset, the extra seeds at the
    chosen point; writes ``dose.json``. ``grid_only``: the points of ``plan.arms`` only, then a partial
    ``dose.json`` (no seeds). ``seeds_only``: the extra seeds at the point chosen among the recipes finished
    so far, nothing else trained (the full run adds seeds at another point if a later recipe wins)."""
    if seeds_only:
        part = replace(plan, arms=finished_arms(plan))
        if not part.arms:
            raise BenchError(f"dose --seeds-only: no recipe has all its points in {plan.root / dose.LEDGER}")
        chosen = choose(summarize(part)["selection"]["points"])
        dose.run_seeds(part, chosen["arm"], chosen["budget"])
        return write(plan, seeds=False)
    dose.run_grid(plan)
    if grid_only:
        return write(plan, seeds=False)
    chosen = choose(summarize(plan)["selection"]["points"])
    dose.run_seeds(plan, chosen["arm"], chosen["budget"])
    return write(plan)
