""" "What fine-tuning buys": the recipe x budget sweep (``make ft-curves``) as tables and generated sentences.

Rendered from ``results/sweeps/ft-recipes/`` only (each point's ``scores.json`` and ``answers.jsonl``): per
recipe and budget the closed-book EM with its interval, the answer-level NLL of the gold answers (the
injection probe), the trained / held-out page perplexities and the training cost; per article-length stratum
at each recipe's best budget; and FT+RAG against RAG on the same questions with an exact McNemar test.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bench.core.schema import mean_of
from bench.core.stats import holm, mcnemar_exact
from bench.eval.sweep import REFERENCE, check_points, load_sweep
from bench.io import answers_file, iter_jsonl, read_json
from bench.reporting.tables import DASH, fmt_metric, fmt_num, table

SWEEP = Path("sweeps") / "ft-recipes"  # under results/
GOAL_EM = 0.30  # issue 25: the best recipe's closed-book EM on these dev facts


def _axis(point: dict[str, Any], name: str) -> str | None:
    for k, v in (point.get("axes") or {}).items():
        if k.rsplit(".", 1)[-1] == name:
            return str(v)
    return None


def points(root: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """(reference scores, recipe → its points sorted by budget), each point with its scores and folder."""
    manifest, scores = load_sweep(root)
    same, _ = check_points(scores)
    by_recipe: dict[str, list[dict[str, Any]]] = {}
    for p in manifest["points"]:
        if p["name"] == REFERENCE or p["name"] not in same:
            continue
        sc = scores[p["name"]]
        recipe = _axis(p, "recipe") or ((sc.get("config") or {}).get("finetune") or {}).get("recipe", "?")
        cost = (sc.get("costs") or {}).get("finetune") or {}
        by_recipe.setdefault(str(recipe), []).append(
            {"name": p["name"], "dir": Path(root) / p["run_dir"], "scores": sc, "cost": cost}
        )
    for pts in by_recipe.values():
        pts.sort(key=lambda q: float(q["cost"].get("epochs") or 0.0))
    return scores.get(REFERENCE) or {}, by_recipe


def _em(scores: dict[str, Any], variant: str) -> Any:
    return ((scores.get("variants") or {}).get(variant) or {}).get("exact_match")


def correct(run_dir: Path, variant: str) -> dict[str, float]:
    """question id → exact match (0/1) of ``variant`` in ``run_dir``'s answers.jsonl."""
    out = {}
    for row in iter_jsonl(answers_file(run_dir)):
        if row.get("variant") == variant:
            out[str(row["question_id"])] = float((row.get("metrics") or {}).get("exact_match") or 0.0)
    return out


def best(pts: list[dict[str, Any]]) -> dict[str, Any]:
    """The point with the highest closed-book EM (the smaller budget on a tie)."""
    return max(pts, key=lambda q: mean_of(_em(q["scores"], "ft")) or 0.0)  # max keeps the first of a tie


def _probe(q: dict[str, Any]) -> dict[str, Any]:
    return q["cost"].get("probe") or {}


def budget_table(ref: dict[str, Any], by_recipe: dict[str, list[dict[str, Any]]]) -> str:
    header = ["recipe", "epochs", "tokens trained", "train s", "tokens/s", "answer NLL", "ppl trained"]
    header += ["ppl held-out", "FT EM [95 %]", "FT+RAG EM"]
    rows = []
    for recipe, pts in sorted(by_recipe.items()):
        pr0 = _probe(pts[0])
        rows.append(
            [
                *(recipe, "0", "0", "0", DASH, fmt_num(pr0.get("answer_nll_before"), 2)),
                *(fmt_num(pr0.get("ppl_trained_before"), 1), fmt_num(pr0.get("ppl_heldout_before"), 1)),
                *(fmt_metric(_em(ref, "base")), fmt_num(_em(ref, "rag"))),
            ]
        )
        for q in pts:
            c, pr = q["cost"], _probe(q)
            rows.append(
                [
                    *(recipe, fmt_num(c.get("epochs"), 0), f"{int(c.get('tokens_seen') or 0):,}"),
                    *(fmt_num(c.get("train_time_s"), 0), fmt_num(c.get("tokens_per_s"), 0)),
                    *(fmt_num(pr.get("answer_nll_after"), 2), fmt_num(pr.get("ppl_trained_after"), 1)),
                    *(fmt_num(pr.get("ppl_heldout_after"), 1), fmt_metric(_em(q["scores"], "ft"))),
                    fmt_num(_em(q["scores"], "ft_rag")),
                ]
            )
    return table(header, rows)


def strata_table(ref: dict[str, Any], by_recipe: dict[str, list[dict[str, Any]]]) -> str:
    """Closed-book EM and answer NLL per article-length stratum: untrained vs each recipe's best budget."""
    strata = sorted(((ref.get("groups") or {}).get("stratum") or {}).keys())
    header = ["stratum (n)", "untrained EM / NLL"]
    header += [f"{r} @ {fmt_num(best(p)['cost'].get('epochs'), 0)} ep" for r, p in sorted(by_recipe.items())]
    rows = []
    any_pts = next(iter(by_recipe.values()), [])
    before = (_probe(any_pts[0]).get("answer_nll_by_stratum") or {}) if any_pts else {}
    for s in strata:
        base = ((ref.get("groups") or {}).get("stratum") or {}).get(s, {}).get("base", {}).get("exact_match")
        n = (base or {}).get("n", DASH)
        cells = [f"{s} ({n})", f"{fmt_num(base)} / {fmt_num((before.get(s) or {}).get('before'), 2)}"]
        for _, pts in sorted(by_recipe.items()):
            b = best(pts)
            em = (((b["scores"].get("groups") or {}).get("stratum") or {}).get(s) or {}).get("ft", {})
            nll = (_probe(b).get("answer_nll_by_stratum") or {}).get(s) or {}
            cells.append(f"{fmt_num(em.get('exact_match'))} / {fmt_num(nll.get('after'), 2)}")
        rows.append(cells)
    return table(header, rows)


def paired(ref_dir: Path, q: dict[str, Any]) -> dict[str, Any]:
    """FT+RAG (point) vs RAG (reference) and FT vs base, on the questions both answered."""
    out = {}
    for mine, theirs in (("ft_rag", "rag"), ("ft", "base")):
        a, b = correct(q["dir"], mine), correct(ref_dir, theirs)
        ids = sorted(set(a) & set(b))
        test = mcnemar_exact([a[i] for i in ids], [b[i] for i in ids])
        diff = (sum(a[i] for i in ids) - sum(b[i] for i in ids)) / len(ids) if ids else None
        out[f"{mine}-{theirs}"] = {**test, "n": len(ids), "diff": diff}
    return out


def _vs_reference(ref_dir: Path, pts: list[dict[str, Any]], mine: str, theirs: str) -> dict[str, Any]:
    """Each point's ``mine`` against the reference's ``theirs`` (McNemar), Holm-adjusted over the points."""
    tests = {}
    b = correct(ref_dir, theirs)
    for q in pts:
        a = correct(q["dir"], mine)
        ids = sorted(set(a) & set(b))
        if ids:
            t = mcnemar_exact([a[i] for i in ids], [b[i] for i in ids])
            tests[q["name"]] = {**t, "diff": (sum(a[i] for i in ids) - sum(b[i] for i in ids)) / len(ids)}
    for name, p_adj in zip(tests, holm([t["p_value"] for t in tests.values()]), strict=True):
        tests[name]["p_holm"] = p_adj
    return tests


def multiplicity_lines(ref_dir: Path, by_recipe: dict[str, list[dict[str, Any]]], top: str) -> list[str]:
    """The claims a "best of N" needs: Holm over the N points, the points that went the other way, and the
    closed-book points against the prior (the most frequent train answer), when the reference has it."""
    pts = [q for qs in by_recipe.values() for q in qs]
    out = []
    rag = _vs_reference(ref_dir, pts, "ft_rag", "rag")
    if top in rag:
        worse = sorted(n for n, t in rag.items() if t["diff"] < 0 and t["p_holm"] < 0.05)
        out.append(
            f"FT+RAG − RAG over the {len(rag)} points, Holm-corrected: the best ({top}) has p = "
            f"{rag[top]['p_holm']:.3g} after correction ({rag[top]['p_value']:.3g} before); significantly "
            f"below RAG after correction: {', '.join(worse) or 'none'}; below RAG at all: "
            f"{sum(t['diff'] < 0 for t in rag.values())} of {len(rag)}."
        )
    if "prior" in correct_variants(ref_dir):
        prior = _vs_reference(ref_dir, pts, "ft", "prior")
        above = sorted(n for n, t in prior.items() if t["diff"] > 0 and t["p_holm"] < 0.05)
        best_name = max(prior, key=lambda n: prior[n]["diff"]) if prior else None
        if best_name:
            b = prior[best_name]
            out.append(
                f"Closed-book FT against the prior (the most frequent train answer of the relation, EM "
                f"{fmt_num(mean_of(_em(read_json(ref_dir / 'scores.json'), 'prior')))}): best {best_name} "
                f"{b['diff']:+.3f} (b10={b['b10']}, b01={b['b01']}, p = {b['p_value']:.3g}, Holm over "
                f"{len(prior)}: {b['p_holm']:.3g}); significantly above it after correction: "
                f"{', '.join(above) or 'none'}."
            )
    return out


def correct_variants(run_dir: Path) -> set[str]:
    variants = (read_json(Path(run_dir) / "scores.json").get("variants") or {}).keys()
    return set(variants)


def _nll_trend(pts: list[dict[str, Any]]) -> str:
    """Every budget's answer NLL and whether it fell at each step ("untrained → at 2 / 4 / 6 epochs")."""
    nll = [mean_of(_probe(q).get("answer_nll_after")) for q in pts]
    start = fmt_num(_probe(pts[0]).get("answer_nll_before"), 2)
    epochs = " / ".join(fmt_num(q["cost"].get("epochs"), 0) for q in pts)
    steps = [mean_of(_probe(pts[0]).get("answer_nll_before")), *nll]
    known = [x for x in steps if x is not None]
    falling = len(known) == len(steps) and all(b < a for a, b in itertools.pairwise(known))
    trend = "falling at every budget" if falling else "not falling at every budget"
    return f"{start} → {' / '.join(fmt_num(x, 2) for x in nll)} at {epochs} epochs ({trend})"


def verdict_lines(root: Path, ref: dict[str, Any], by_recipe: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Generated sentences: the best recipe against the goal, whether the NLL still fell, FT+RAG vs RAG."""
    lines = []
    ref_dir = Path(root) / REFERENCE
    span = mean_of(_em(ref, "span_rag"))
    for recipe, pts in sorted(by_recipe.items()):
        b = best(pts)
        t = paired(ref_dir, b)
        fr, fb = t["ft_rag-rag"], t["ft-base"]
        lines.append(
            f"**{recipe}**: best closed-book EM {fmt_num(_em(b['scores'], 'ft'))} at "
            f"{fmt_num(b['cost'].get('epochs'), 0)} epochs (untrained {fmt_num(_em(ref, 'base'))}; FT − base "
            f"{fmt_num(fb['diff'], 3)}, McNemar b10={fb['b10']}, b01={fb['b01']}, p = {fb['p_value']:.3g}); "
            f"answer NLL {_nll_trend(pts)}; FT+RAG − RAG "
            f"at the best budget {fmt_num(fr['diff'], 3)} (b10={fr['b10']}, b01={fr['b01']}, "
            f"p = {fr['p_value']:.3g}, n = {fr['n']})."
        )
    top = max(
        (q for pts in by_recipe.values() for q in pts), key=lambda q: mean_of(_em(q["scores"], "ft")) or 0.0
    )
    top_em = mean_of(_em(top["scores"], "ft")) or 0.0
    top_rag = max(
        (q for pts in by_recipe.values() for q in pts),
        key=lambda q: mean_of(_em(q["scores"], "ft_rag")) or 0.0,
    )
    top_ft_rag = mean_of(_em(top_rag["scores"], "ft_rag")) or 0.0
    vs = paired(ref_dir, top_rag)["ft_rag-rag"]
    lines += [*multiplicity_lines(ref_dir, by_recipe, top_rag["name"])]
    lines.append(
        f"Goal (closed-book EM ≥ {GOAL_EM:.2f} on these dev facts): "
        f"{'met' if top_em >= GOAL_EM else 'not met'} — best {top_em:.3f} ({top['name']}). The strongest "
        f"no-model baseline on the same retrieved passages (typed span extractor) scores {fmt_num(span)}; "
        f"best FT+RAG {top_ft_rag:.3f} ({top_rag['name']}; − RAG {fmt_num(vs['diff'], 3)}, b10={vs['b10']}, "
        f"b01={vs['b01']}, p = {vs['p_value']:.3g} before correction, picked on these questions)."
    )
    return lines


def render(root: Path) -> str:
    ref, by_recipe = points(root)
    if not by_recipe:
        return f"No fine-tuned points in {root} yet.\n"
    n = (_em(ref, "base") or {}).get("n", DASH)
    pages = {str(q["cost"].get("pages")) for pts in by_recipe.values() for q in pts}
    out = [
        f"{n} dev fact questions about {' / '.join(sorted(pages))} articles (profile `curves`, sweep "
        f"`{Path(root).name}`, reference run `{ref.get('run_id') or DASH}`); budget = exposures of each "
        "evaluated page's lead; 0 = untrained (FT = base, FT+RAG = RAG). Answer NLL: mean over the questions "
        "of the gold answer's NLL after the closed-book prompt (lower = the fact is stored and reachable"
        " from the question). The best budget is picked on these same questions, so its scores lean"
        " optimistic; the untrained row and the largest budget are not picked.",
        "",
        budget_table(ref, by_recipe),
        "By article-length stratum (obscure / mid / popular = terciles of the page's length, a popularity "
        "proxy; closed-book EM / answer NLL):",
        "",
        strata_table(ref, by_recipe),
        *(f"- {line}" for line in verdict_lines(root, ref, by_recipe)),
    ]
    return "\n".join(out) + "\n"


def render_summary(root: Path) -> str:
    """The generated sentences alone (README's "What fine-tuning buys")."""
    ref, by_recipe = points(root)
    if not by_recipe:
        return f"No fine-tuned points in {root} yet.\n"
    return "\n".join(f"- {line}" for line in verdict_lines(root, ref, by_recipe)) + "\n"
