"""``python -m bench dose``: closed-book fact storage against the training budget (``make ft-dose``).

Arms (:data:`ARMS`): ``mixed``, ``aug`` and ``pit`` with ``augment = 8`` (QA pairs first, then the augmented
pages with the QA). Budgets (:data:`BUDGETS`): 1, 2, 4, 8, 16, 32 exposures = page records seen per page,
each record one statement of the page's facts (a view of its lead or a restatement): ``finetune.epochs`` =
budget / :func:`bench.training.recipes.records_per_page` passes, and ``finetune.order = "exposure"`` (the
profile) orders each pass so that a fraction of one is a whole number of records of every page. The
comparable axis is training tokens per evaluated page. One constant-rate training per arm (and seed) at the
largest budget saves the smaller budgets' adapters as snapshots (``finetune.snapshot_epochs``,
bench/training/snapshots.py).

Questions: the *selection* subset (every selection question of the split) picks the arm and budget, the
disjoint *report* subset (its first ``report_limit`` questions) judges them (bench/questions/load.py
``subset_of``: split by page). Every adapter trains on the pages of both: the training configuration reads
``train-questions.jsonl`` (the two subsets' rows, written under the sweep folder), the evaluation
configurations read the profile's question file at one subset; :func:`stages_for` gives the runner the
training configuration's adapter. Every point is an ordinary resumable run directory
``results/sweeps/<name>/<subset>-<arm>-e<budget>[-seed<s>]/``; ``dose.json`` (bench/eval/dose_summary.py)
is what the report renders (bench/reporting/dose_report.py); ``dose_summary.run`` runs it all.

Resumable across machines: ``points.json`` (:data:`LEDGER`, committed beside ``dose.json``) records each
finished point's key (:func:`point_key`: every variant's key, adapter and index included, and the question
ids) and its adapter's training record. A point whose committed ``scores.json`` and ``answers.jsonl`` carry
the key the configuration gives now is not run again, so a fresh clone goes on where the last machine
stopped, without the caches, and an arm whose points are all committed is not retrained.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config, load_config, stable_hash
from bench.eval import runner
from bench.eval.rag_sweep import SharedGenerators
from bench.eval.runstate import artifact_key, variant_key
from bench.eval.stages import Stages, default_stages
from bench.eval.sweep import REFERENCE_VARIANTS
from bench.eval.variants import get_spec
from bench.io import answers_file, atomic_write_json, atomic_write_text, iter_jsonl_numbered, read_json

log = logging.getLogger(__name__)

ARMS: dict[str, tuple[str, ...]] = {
    "mixed": ("finetune.recipe=mixed",),
    "aug": ("finetune.recipe=aug",),
    "pit-aug": ("finetune.recipe=pit", "finetune.augment=8"),
}
BUDGETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
SEEDS = 3  # trainings at the chosen point: the profile's seed and the next SEEDS - 1
SUBSETS = ("selection", "report")
TRAIN_QUESTIONS = "train-questions.jsonl"
MIN_SELECTION, MIN_REPORT = 60, 120
POINT_VARIANTS = ("ft", "ft_rag")
LEDGER = "points.json"
ADAPTER_FIELDS = ("epochs", "steps", "train_time_s", "tokens_seen", "coverage", "probe")  # dose_summary's
REF_VARIANTS = (*REFERENCE_VARIANTS, "prior")


@dataclass(frozen=True)
class Plan:
    """What one dose sweep runs."""

    profile: str
    overrides: tuple[str, ...]
    root: Path
    arms: tuple[str, ...] = tuple(ARMS)
    budgets: tuple[int, ...] = BUDGETS
    report_limit: int = MIN_REPORT
    seeds: int = SEEDS

    @property
    def base(self) -> Config:
        return load_config(self.profile, list(self.overrides))


def make_plan(
    profile: str,
    overrides: list[str],
    name: str,
    arms: tuple[str, ...] = tuple(ARMS),
    budgets: tuple[int, ...] = BUDGETS,
    report_limit: int = MIN_REPORT,
    seeds: int = SEEDS,
) -> Plan:
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        raise BenchError(f"dose: unknown arm(s) {unknown}; use some of {', '.join(ARMS)}")
    if not budgets or any(b <= 0 for b in budgets) or len(set(budgets)) != len(budgets):
        raise BenchError(f"dose: budgets must be distinct exposures > 0, got {budgets}")
    root = load_config(profile, overrides).results_path / "sweeps" / name
    return Plan(profile, tuple(overrides), root, arms, tuple(sorted(budgets)), report_limit, seeds)


def subset_sets(plan: Plan, subset: str) -> list[str]:
    """The overrides asking one subset's questions: all of selection, the first ``report_limit`` of report."""
    limit = 0 if subset == "selection" else plan.report_limit
    return [f"subset={subset}", f"limit={limit}"]


def subset_questions(plan: Plan, subset: str) -> list[dict[str, Any]]:
    from bench.questions.load import load_questions

    return load_questions(load_config(plan.profile, [*plan.overrides, *subset_sets(plan, subset)]))


def write_train_questions(plan: Plan, minimum: tuple[int, int] = (MIN_SELECTION, MIN_REPORT)) -> Path:
    """``train-questions.jsonl``: the question file's rows of both subsets, as written there (file order), so
    the adapters train on every evaluated page of both; refuses subsets smaller than ``minimum``."""
    ids: set[str] = set()
    for subset, least in zip(SUBSETS, minimum, strict=True):
        rows = subset_questions(plan, subset)
        if len(rows) < least:
            raise BenchError(f"dose: the {subset} subset has {len(rows)} questions, fewer than {least}")
        ids |= {str(r["id"]) for r in rows}
    base = plan.base
    src = base.path(base.questions)
    lines = [
        json.dumps(obj, ensure_ascii=False) + "\n"
        for _, obj in iter_jsonl_numbered(src)
        if str(obj.get("id")) in ids
    ]
    out = plan.root / TRAIN_QUESTIONS
    text = "".join(lines)
    if not out.exists() or out.read_text(encoding="utf-8") != text:
        atomic_write_text(out, text)
    return out


def passes(plan: Plan, arm: str, budget: float) -> float:
    """``finetune.epochs`` (passes over the page records) of ``budget`` exposures of each page for ``arm``."""
    from bench.training.recipes import records_per_page

    ft = load_config(plan.profile, [*plan.overrides, *ARMS[arm]]).finetune
    return budget / records_per_page(ft)


def train_config(plan: Plan, arm: str, budget: float, seed_offset: int = 0, snapshots: bool = True) -> Config:
    """The adapter's configuration: ``arm`` at ``budget`` exposures over both subsets' pages; with
    ``snapshots`` the smaller budgets of the plan are saved on the way (constant rate)."""
    base = plan.base
    epochs = passes(plan, arm, budget)
    sets = [
        *plan.overrides, *ARMS[arm], f"finetune.epochs={epochs!r}", f"seed={base.seed + seed_offset}",
        f"questions={(plan.root / TRAIN_QUESTIONS).resolve()}", "subset=", "limit=0", "sample=first",
    ]  # fmt: skip
    cfg = load_config(plan.profile, sets)
    ft = cfg.finetune
    if ft.lr_scheduler != "constant_with_warmup":
        raise BenchError("dose: snapshots need finetune.lr_scheduler = constant_with_warmup (profile dose)")
    below = tuple(passes(plan, arm, b) for b in plan.budgets if b < budget) if snapshots else ()
    return replace(cfg, finetune=dataclasses.replace(ft, snapshot_epochs=below))


def eval_config(plan: Plan, subset: str, arm: str | None, budget: float = 0) -> Config:
    """A run's configuration: the profile's questions of ``subset``; ``arm`` None = the reference (base,
    RAG, the prior and the no-model baselines)."""
    if arm is None:
        sets = ["finetune.epochs=0", f"run.variants={','.join(REF_VARIANTS)}"]
    else:
        epochs = passes(plan, arm, budget)
        sets = [*ARMS[arm], f"finetune.epochs={epochs!r}", f"run.variants={','.join(POINT_VARIANTS)}"]
    return load_config(plan.profile, [*plan.overrides, *sets, *subset_sets(plan, subset)])


def point_dir(plan: Plan, subset: str, arm: str | None, budget: float = 0, seed_offset: int = 0) -> Path:
    name = "reference" if arm is None else f"{arm}-e{budget:g}"
    return plan.root / (f"{subset}-{name}" + (f"-seed{seed_offset}" if seed_offset else ""))


def stages_for(train_cfg: Config, make_generators: Callable[[Config, Path | None], Any]) -> Stages:
    """The runner's stages with ``train_cfg``'s adapter (both subsets' pages), whatever subset a run asks."""
    from bench.training import finetune, sft_qa

    def key(cfg: Config, stage: str) -> str:
        return artifact_key(train_cfg if stage == "finetune" else cfg, stage)

    return replace(
        default_stages(),
        ensure_adapter=lambda _cfg: Path(finetune.ensure_adapter(train_cfg)),
        adapter_dir=lambda _cfg: Path(finetune.adapter_dir(train_cfg)),
        training_question_ids=lambda _cfg: {str(q) for q in sft_qa.training_question_ids(train_cfg)},
        artifact_key=key,
        make_generators=make_generators,
    )


def point_key(cfg: Config, stages: Stages) -> str:
    """What a point's answers depend on: every variant's key (model, prompt, index, adapter, code) and the
    ids of its questions in order."""
    from bench.questions.load import load_questions

    keys = {n: variant_key(cfg, get_spec(n), stages.artifact_key) for n in cfg.run.variants}
    return stable_hash({"variants": keys, "questions": [str(q["id"]) for q in load_questions(cfg)]})


def ledger(plan: Plan) -> dict[str, Any]:
    path = plan.root / LEDGER
    return read_json(path) if path.exists() else {}


def is_done(plan: Plan, run_dir: Path, key: str) -> bool:
    """``run_dir`` holds a finished point of ``key`` (its results committed, its key in the ledger)."""
    entry = ledger(plan).get(run_dir.name) or {}
    return entry.get("key") == key and (run_dir / "scores.json").exists() and answers_file(run_dir).exists()


def record_point(plan: Plan, run_dir: Path, key: str, adapter: Path | None) -> None:
    """Add a finished point to the ledger, with its adapter's training record (cost, coverage, probe)."""
    entry: dict[str, Any] = {"key": key, "adapter": None}
    if adapter is not None:
        meta = read_json(adapter / "train_metadata.json")
        entry["adapter"] = {k: meta.get(k) for k in ADAPTER_FIELDS}
    book = ledger(plan)
    book[run_dir.name] = entry
    atomic_write_json(plan.root / LEDGER, dict(sorted(book.items())))


def run_reference(plan: Plan, subset: str) -> None:
    """The untrained reference of ``subset`` (base, RAG, the prior, the no-model baselines)."""
    cfg, run_dir = eval_config(plan, subset, None), point_dir(plan, subset, None)
    key = point_key(cfg, default_stages())
    if is_done(plan, run_dir, key):
        log.info("dose %s: the reference is committed (%s)", subset, run_dir)
        return
    runner.run(cfg, run_dir)
    record_point(plan, run_dir, key, None)


def run_point(plan: Plan, arm: str, budget: float, train_cfg: Config, subsets: tuple[str, ...]) -> None:
    """``arm`` at ``budget`` on ``subsets`` with one set of generators (one engine per adapter); the
    subsets whose point is committed are skipped (and with them the training, when all are)."""
    offset = train_cfg.seed - plan.base.seed
    keyed = stages_for(train_cfg, default_stages().make_generators)
    todo = []
    for subset in subsets:
        cfg, run_dir = eval_config(plan, subset, arm, budget), point_dir(plan, subset, arm, budget, offset)
        key = point_key(cfg, keyed)
        if is_done(plan, run_dir, key):
            log.info("dose %s: %s at %g exposures is committed (%s)", subset, arm, budget, run_dir)
        else:
            todo.append((subset, cfg, run_dir, key))
    if not todo:
        return
    shared = SharedGenerators(default_stages())
    try:
        stages = stages_for(train_cfg, shared.make)
        for subset, cfg, run_dir, key in todo:
            log.info("dose %s: %s at %g exposures (seed %d)", subset, arm, budget, train_cfg.seed)
            runner.run(cfg, run_dir, stages=stages)
            record_point(plan, run_dir, key, stages.adapter_dir(cfg))
    finally:
        shared.close()


def run_grid(plan: Plan) -> None:
    """The references and every point on both subsets (largest budget first: its training saves the rest)."""
    write_train_questions(plan)
    for subset in SUBSETS:
        run_reference(plan, subset)
    for arm in plan.arms:
        for i, budget in enumerate(sorted(plan.budgets, reverse=True)):
            run_point(plan, arm, budget, train_config(plan, arm, budget, snapshots=i == 0), SUBSETS)


def run_seeds(plan: Plan, arm: str, budget: int) -> None:
    """The extra seeds' trainings at the chosen point, answered on the report subset."""
    for offset in range(1, plan.seeds):
        run_point(plan, arm, budget, train_config(plan, arm, budget, offset, snapshots=False), ("report",))


def budget_records(train: list[dict[str, Any]], epochs: float) -> int:
    """Records of the schedule up to ``epochs`` passes (a snapshot's records are a prefix of the largest
    budget's): the QA-first head (``pit``), every record of the whole passes, then the first part of the
    next pass, cut as bench.training.recipes cuts it."""
    head = sum(1 for r in train if r.get("phase") == "qa")
    body = [int(r.get("epoch", 0)) for r in train if r.get("phase") != "qa"]
    whole = int(epochs)
    per_pass = body.count(whole)
    return head + sum(1 for e in body if e < whole) + round((epochs - whole) * per_pass)


TOKENS_PER_S = (90.0, 116.0)  # CPU training throughput measured here (committed ft-recipes sweep, 2 cores)


def estimate(
    plan: Plan, s_per_step: tuple[float, ...] = (3.0, 5.0), tokens_per_s: tuple[float, ...] = TOKENS_PER_S
) -> dict[str, Any]:
    """Without training: per arm and budget the records, optimizer steps and tokens per evaluated page of
    the largest budget's schedule (tokenizer only), whether each budget ends on a batch boundary (snapshots
    refuse a cut batch), and the CPU hours of the trainings at ``s_per_step`` (the seeds' extra trainings
    counted at the largest budget: the chosen budget is not known before the sweep), and at ``tokens_per_s``
    (a batch-1 step carries a quarter of a batch-4 step's tokens: the token rate prices both)."""
    from transformers import AutoTokenizer

    from bench import model_registry
    from bench.generation import models
    from bench.training import sft_data, sft_recipes

    write_train_questions(plan)
    out: dict[str, Any] = {"arms": {}, "s_per_step": list(s_per_step)}
    largest: list[int] = []
    tokens: list[int] = []
    for arm in plan.arms:
        cfg = train_config(plan, arm, max(plan.budgets), snapshots=False)
        tok = AutoTokenizer.from_pretrained(models.ensure_hf_model(cfg))
        chat = bool(model_registry.resolve_model(cfg).chat_template and tok.chat_template is not None)
        data = sft_recipes.build_training_data(cfg, tok, use_chat=chat)
        per_step = cfg.finetune.batch_size * cfg.finetune.grad_accum
        pages = int((data.stats.get("coverage") or {}).get("evaluated_pages") or 0)
        lengths = [len(tok(sft_data.record_text(r), add_special_tokens=False)["input_ids"])
                   for r in data.train]  # fmt: skip
        rows = []
        for b in plan.budgets:
            n = budget_records(data.train, passes(plan, arm, b))
            per_page = round(sum(lengths[:n]) / pages, 1) if pages else None
            row = {"budget": b, "records": n, "steps": -(-n // per_step), "on_batch": n % per_step == 0}
            rows.append({**row, "tokens_per_page": per_page})
        out["arms"][arm] = {"pages": pages, "per_step": per_step, "budgets": rows}
        largest.append(int(rows[-1]["steps"] or 0))
        tokens.append(sum(lengths[: int(rows[-1]["records"] or 0)]))
    steps_total = sum(largest) + (plan.seeds - 1) * max(largest)  # the seeds: worst case, largest budget
    out["steps_total"] = steps_total
    out["hours"] = [round(steps_total * s / 3600, 1) for s in s_per_step]
    out["tokens_total"] = sum(tokens) + (plan.seeds - 1) * max(tokens)
    out["tokens_per_s"] = list(tokens_per_s)
    out["hours_by_tokens"] = [round(out["tokens_total"] / r / 3600, 1) for r in tokens_per_s]
    return out
