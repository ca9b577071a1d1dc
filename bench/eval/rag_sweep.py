"""``python -m bench rag-sweep``: the RAG arm tuned with the same effort as fine-tuning (issue 34).

A grid over how the reader reads its passages — ``index.k`` ∈ {1, 2, 3, 5}, ``index.passage_order``
(best first / best last) and ``index.page_only`` (only the top hit's page) — is run on the *selection*
subset of the questions, the best point is chosen there (EM; ties: the profile's own setting, then fewer
passages), and every point is then run on the *report* subset, where the chosen point is compared with the
profile's setting (one planned test) and every point with it, Holm-corrected over the points
(:func:`bench.core.stats.holm`), the points significantly worse listed too. One engine serves every point
(the generators are shared), each point is an ordinary resumable run directory:
``results/sweeps/<name>/<subset>-<point>/``; ``settings.json`` beside them is what the report renders
(bench/reporting/rag_settings.py).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.config import Config, load_config
from bench.core.stats import holm, mcnemar_exact, wilson_ci
from bench.eval import runner
from bench.eval.runstate import git_state
from bench.eval.stages import Stages, default_stages
from bench.io import answers_file, atomic_write_json, iter_jsonl

log = logging.getLogger(__name__)

KS = (1, 2, 3, 5)
ORDERS = ("best_first", "best_last")
PAGE_ONLY = (False, True)
SUBSETS = ("selection", "report")
SETTINGS = "settings.json"  # not sweep.json: that names a fine-tuning sweep (make report renders those)


def points(ks: tuple[int, ...] = KS) -> list[dict[str, Any]]:
    """The grid, without duplicates (one passage has no order, and is the top hit's page anyway)."""
    out = []
    for k, order, page in itertools.product(ks, ORDERS, PAGE_ONLY):
        if k == 1 and (order != "best_first" or page):
            continue
        out.append({"k": k, "passage_order": order, "page_only": page})
    return out


def point_name(p: dict[str, Any]) -> str:
    order = "last" if p["passage_order"] == "best_last" else "first"
    return f"k{p['k']}-{order}" + ("-page" if p["page_only"] else "")


def point_sets(p: dict[str, Any]) -> list[str]:
    order, page = p["passage_order"], p["page_only"]
    return [f"index.k={p['k']}", f"index.passage_order={order}", f"index.page_only={str(page).lower()}"]


class SharedGenerators:
    """Generators made once and reused by every point (an engine start is minutes on a CPU)."""

    def __init__(self, stages: Stages) -> None:
        self.stages = stages
        self.made: dict[Any, dict[str, Any]] = {}

    def make(self, cfg: Config, adapter: Path | None) -> dict[str, Any]:
        key = (repr(cfg.model), cfg.device, str(adapter))
        if key not in self.made:
            self.made[key] = self.stages.make_generators(cfg, adapter)
        return {name: _NoClose(gen) for name, gen in self.made[key].items()}

    def close(self) -> None:
        for gens in self.made.values():
            for gen in gens.values():
                gen.close()


class _NoClose:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def close(self) -> None:  # the sweep closes the real generator once, at the end
        return None


def _em(run_dir: Path, variant: str) -> dict[str, float]:
    return {
        str(r["question_id"]): float(r["metrics"]["exact_match"])
        for r in iter_jsonl(answers_file(run_dir))
        if r["variant"] == variant
    }


def summarize(runs: dict[str, Path], reference: str, variant: str) -> dict[str, Any]:
    """EM per point and each point against ``reference`` (McNemar, Holm over the other points)."""
    em = {name: _em(path, variant) for name, path in runs.items()}
    ids = sorted(em[reference])
    ref = [em[reference][q] for q in ids]
    rows: dict[str, Any] = {}
    for name in runs:
        hits = [em[name][q] for q in ids]
        test = mcnemar_exact(hits, ref) if name != reference else {"b10": 0, "b01": 0, "p_value": 1.0}
        ci = wilson_ci(sum(hits), len(hits))
        rows[name] = {
            "em": sum(hits) / len(hits),
            "ci95": list(ci) if ci else None,
            "n": len(hits),
            "diff": (sum(hits) - sum(ref)) / len(hits),
            **test,
        }
    others = [n for n in runs if n != reference]
    for name, p_adj in zip(others, holm([rows[n]["p_value"] for n in others]), strict=True):
        rows[name]["p_holm"] = p_adj
        rows[name]["significant_holm"] = p_adj < 0.05
    return {"reference": reference, "n": len(ids), "points": rows}


def choose(summary: dict[str, Any], order: list[str]) -> str:
    """The best EM; ties go to the reference, then to the earlier point of the grid (fewer passages)."""
    ref = summary["reference"]
    pts = summary["points"]
    return max(order, key=lambda n: (round(pts[n]["em"], 9), n == ref, -order.index(n)))


def _runs(
    profile: str,
    overrides: list[str],
    root: Path,
    subset: str,
    grid: list[dict[str, Any]],
    shared: SharedGenerators,
    variant: str,
) -> Iterator[tuple[str, Path]]:
    stages = replace(shared.stages, make_generators=shared.make)
    for p in grid:
        name = point_name(p)
        sets = [*overrides, *point_sets(p), f"subset={subset}", f"run.variants={variant}"]
        cfg = load_config(profile, sets)
        log.info("rag-sweep %s/%s", subset, name)
        yield name, runner.run(cfg, root / f"{subset}-{name}", stages=stages)


def run_rag_sweep(
    profile: str,
    overrides: list[str],
    name: str,
    variant: str = "rag",
    report_limit: int = 120,
    stages: Stages | None = None,
) -> Path:
    """Selection then report subsets over the grid; writes ``settings.json``; returns the sweep directory."""
    base = load_config(profile, overrides)
    root = base.results_path / "sweeps" / name
    grid = points()
    names = [point_name(p) for p in grid]
    reference = point_name(
        {"k": base.index.k, "passage_order": base.index.passage_order, "page_only": base.index.page_only}
    )
    shared = SharedGenerators(stages or default_stages())
    out: dict[str, Any] = {
        "profile": profile,
        "overrides": overrides,
        "variant": variant,
        "grid": grid,
        "reference": reference,
        **git_state(),
    }
    try:
        sel = dict(_runs(profile, [*overrides, "limit=0"], root, "selection", grid, shared, variant))
        out["selection"] = summarize(sel, reference, variant)
        out["chosen"] = choose(out["selection"], names)
        report_sets = [*overrides, f"limit={report_limit}"]
        rep = dict(_runs(profile, report_sets, root, "report", grid, shared, variant))
        out["report"] = summarize(rep, reference, variant)
    finally:
        shared.close()
    chosen = out["report"]["points"][out["chosen"]]
    out["chosen_on_report"] = {k: chosen[k] for k in ("em", "diff", "b10", "b01", "p_value", "n")}
    out["worse_on_report"] = sorted(
        n for n, r in out["report"]["points"].items() if r.get("significant_holm") and r["diff"] < 0
    )
    atomic_write_json(root / SETTINGS, out)
    return root
