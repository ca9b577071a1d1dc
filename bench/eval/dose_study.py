"""The dose sweep's choice at scale: the ``study`` run (every dev fact question) judged without the selection
subset (issue 33, item 8).

The study profile is meant to train the point the dose sweep chose; :func:`mismatch` names every fine-tuning
setting of the committed study run that differs from the chosen point's, and the report then says that the
study's adapter is not the choice yet. The study's questions hold the sweep's selection subset (the choice was
made on it), so the verdict is computed on the other questions: FT and FT+RAG against base, prior and RAG,
McNemar exact, Holm-corrected over those comparisons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import config_to_dict
from bench.eval import dose
from bench.eval.hitmaps import compare, em_of, hits
from bench.io import read_json

STUDY_RUN = Path("runs") / "study"  # under results/
# Settings that shape what is measured or logged around the training, not what the adapter learns.
EXEMPT = ("snapshot_epochs", "probe", "probe_tokens", "logging_steps", "save_steps")
VARIANTS = ("ft", "ft_rag", "base", "prior", "rag")
COMPARISONS = {
    "ft-base": ("ft", "base"), "ft-prior": ("ft", "prior"), "ft-rag": ("ft", "rag"),
    "ft_rag-rag": ("ft_rag", "rag"),
}  # fmt: skip


def mismatch(study_ft: dict[str, Any], chosen_ft: dict[str, Any]) -> dict[str, list[Any]]:
    """{setting: [study's, chosen's]} for every fine-tuning setting that differs (``EXEMPT`` aside)."""
    return {
        k: [study_ft.get(k), v]
        for k, v in sorted(chosen_ft.items())
        if k not in EXEMPT and study_ft.get(k) != v
    }


def section(plan: dose.Plan, chosen: dict[str, Any], run_dir: Path | None = None) -> dict[str, Any] | None:
    """The study run against the chosen point (None when no study run is committed): the settings that
    differ, then EM of each variant and the paired tests on the study's questions outside the selection
    subset."""
    from bench.core.stats import holm

    run_dir = run_dir or plan.base.results_path / STUDY_RUN
    if not (run_dir / "scores.json").exists():
        return None
    study_ft = read_json(run_dir / "scores.json")["config"]["finetune"]
    train = dose.train_config(plan, chosen["arm"], chosen["budget"], snapshots=False)
    selection = {str(q["id"]) for q in dose.subset_questions(plan, "selection")}
    mine = {v: hits(run_dir, v) for v in VARIANTS}
    kept = {v: {q: h for q, h in m.items() if q not in selection} for v, m in mine.items()}
    vs = {c: compare(kept[a], kept[b]) for c, (a, b) in COMPARISONS.items()}
    for c, adj in zip(vs, holm([t["p_value"] for t in vs.values()]), strict=True):
        vs[c]["p_holm"] = adj
    return {
        "run": str(run_dir.relative_to(plan.base.results_path.parent))
        if run_dir.is_relative_to(plan.base.results_path.parent) else str(run_dir),
        "mismatch": mismatch(study_ft, config_to_dict(train)["finetune"]),
        "questions": len(mine["ft"]), "excluded_selection": len(mine["ft"]) - len(kept["ft"]),
        "em": {v: em_of(h) for v, h in kept.items()}, "vs": vs,
    }  # fmt: skip
