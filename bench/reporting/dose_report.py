"""The dose sweep (``make ft-dose``, bench/eval/dose.py) as Markdown and a PNG, from ``dose.json`` only.

Per recipe and budget on the report subset: tokens per evaluated page, closed-book EM (FT) and FT+RAG EM,
the answer NLL of the report questions and the trained-record / held-out NLLs; then generated sentences: the
choice (made on the selection subset) and its report-subset tests against base, prior and RAG, Holm-corrected
over the points it was picked from; the points significantly worse than their reference; the budgets that
reach closed-book EM 0.30, the prior and RAG; whether the trained-record NLL fell with every budget; the
spread over seeds at the chosen point. Every number is read from the JSON, never typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.reporting.tables import DASH, fmt_num, table

SWEEP = Path("sweeps") / "ft-dose"  # under results/
DOSE = "dose.json"
PNG = "dose.png"
REFS = (("base", "base (untrained)"), ("prior", "prior (top train answer)"), ("rag", "RAG"))
VS = {"ft-base": "base", "ft-prior": "prior", "ft_rag-rag": "RAG"}


def _em(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("em") is None:
        return DASH
    ci = cell.get("ci95")
    return f"{cell['em']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _grid(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((p for p in points if not p.get("seed")), key=lambda p: (p["arm"], p["budget"]))


def points_table(doc: dict[str, Any], subset: str = "report") -> str:
    head = ["recipe", "exposures", "pages trained", "tokens / page", "train s", "answer NLL", "trained NLL"]
    head += ["held-out NLL"]
    head += ["FT EM [95 %]", "FT+RAG EM"]
    rows = []
    for p in _grid(doc[subset]["points"]):
        mark = (
            " (chosen)" if (p["arm"], p["budget"]) == (doc["chosen"]["arm"], doc["chosen"]["budget"]) else ""
        )
        rows.append(
            [
                f"{p['arm']}{mark}", str(p["budget"]), _pages(p), fmt_num(p.get("tokens_per_page"), 0),
                fmt_num(p.get("train_s"), 0),
                f"{fmt_num(p.get('answer_nll_before'), 2)} → {fmt_num(p.get('answer_nll_after'), 2)}",
                f"{fmt_num(p.get('nll_trained_before'), 2)} → {fmt_num(p.get('nll_trained_after'), 2)}",
                f"{fmt_num(p.get('nll_heldout_before'), 2)} → {fmt_num(p.get('nll_heldout_after'), 2)}",
                _em(p.get("ft")), _em(p.get("ft_rag")),
            ]
        )  # fmt: skip
    return table(head, rows)


def _pages(p: dict[str, Any]) -> str:
    return DASH if p.get("trained_pages") is None else f"{p['trained_pages']} / {p.get('pages')}"


def _test(t: dict[str, Any]) -> str:
    return (
        f"{t['diff']:+.3f} (b10={t['b10']}, b01={t['b01']}, p = {t['p_value']:.3g}, Holm "
        f"{t.get('p_holm', 1.0):.3g})"
    )


def _reach(cell: dict[str, Any] | None, largest: int) -> str:
    if not cell:
        return f"not reached up to {largest} exposures"
    return f"{cell['budget']} exposures ({fmt_num(cell.get('tokens_per_page'), 0)} tokens/page)"


def verdict_lines(doc: dict[str, Any]) -> list[str]:
    ch, rep, sel = doc["chosen"], doc["chosen_on_report"], doc["selection"]
    refs = doc["report"]["reference"]
    n_grid = len(_grid(doc["report"]["points"]))
    lines = [
        f"Chosen on the selection subset (n = {sel['n']}, highest closed-book EM; ties: fewer tokens): "
        f"**{ch['arm']} at {ch['budget']} exposures** ({fmt_num(ch.get('tokens_per_page'), 0)} tokens/page; "
        f"selection EM {fmt_num(ch.get('selection_em'))}).",
        f"On the report subset (n = {doc['report']['n']}): closed-book EM {_em(rep['ft'])}, FT+RAG "
        f"{_em(rep['ft_rag'])}; base {_em(refs['base'])}, prior {_em(refs['prior'])}, "
        f"RAG {_em(refs['rag'])}. "
        f"FT − base {_test(rep['vs']['ft-base'])}; FT − prior {_test(rep['vs']['ft-prior'])}; FT+RAG − RAG "
        f"{_test(rep['vs']['ft_rag-rag'])} — McNemar exact, Holm-corrected over the {n_grid} points it was "
        "picked from.",
    ]
    worse = doc.get("worse_on_report") or {}
    lines.append(
        "Significantly worse than their reference after Holm (report subset): "
        + "; ".join(f"{VS[c]}: {', '.join(worse.get(c) or []) or 'none'}" for c in VS)
        + "."
    )
    reached, largest = doc["reached"], doc["reached"]["largest_budget"]
    for arm in sorted(doc["arms"]):
        r = reached.get(arm) or {}
        lines.append(
            f"**{arm}** — to reach closed-book EM 0.30: {_reach(r.get('em 0.30'), largest)}; the prior: "
            f"{_reach(r.get('prior'), largest)}; RAG: {_reach(r.get('rag'), largest)}. Trained-record NLL "
            f"{'falls' if doc['trained_nll_falling'].get(arm) else 'does not fall'} with every larger "
            "budget; "
            f"answer NLL {'falls' if doc['answer_nll_falling'].get(arm) else 'does not fall'} with every one."
        )
    if spread := doc.get("seed_spread"):
        ft, fr = spread["ft"], spread["ft_rag"]
        lines.append(
            f"Seeds at the chosen point ({len(spread['seeds'])}, report subset): closed-book EM mean "
            f"{ft['mean']:.3f} (sd {fmt_num(ft['sd'], 3)}, {ft['min']:.3f}–{ft['max']:.3f}) beside the "
            "effect "
            f"FT − base {rep['vs']['ft-base']['diff']:+.3f}; FT+RAG mean {fr['mean']:.3f} "
            f"({fr['min']:.3f}–{fr['max']:.3f})."
        )
    return lines


def study_lines(doc: dict[str, Any]) -> list[str]:
    """The choice at scale: the study run's FT and FT+RAG on its questions outside the selection subset, or
    why that verdict is not there yet (no study run; a study adapter other than the choice)."""
    study = doc.get("study")
    if not study:
        return ["At scale: no study run (`make bench PROFILE=study`) is committed yet."]
    if study["mismatch"]:
        shown = list(study["mismatch"].items())
        diff = "; ".join(
            f"`{k}` {'unset' if a is None else repr(a)} (chosen: {b!r})" for k, (a, b) in shown[:4]
        )  # unset: a setting newer than that run
        diff += f"; {len(shown) - 4} more" if len(shown) > 4 else ""
        return [
            f"At scale: not measured yet — the committed study run ({study['run']}) trained another adapter "
            f"than the chosen point: {diff}."
        ]
    em, vs = study["em"], study["vs"]
    out = study["excluded_selection"]
    return [
        f"**At scale** ({study['run']}: {em['ft']['n']} dev questions, the {out} of the selection subset "
        f"left out): closed-book EM {_em(em['ft'])}, FT+RAG {_em(em['ft_rag'])}; base {_em(em['base'])}, "
        f"prior {_em(em['prior'])}, RAG {_em(em['rag'])}. FT − base {_test(vs['ft-base'])}; FT − prior "
        f"{_test(vs['ft-prior'])}; FT − RAG {_test(vs['ft-rag'])}; FT+RAG − RAG {_test(vs['ft_rag-rag'])} — "
        f"McNemar exact, Holm over these {len(vs)}."
    ]


def pending_lines(doc: dict[str, Any]) -> list[str]:
    """A partial sweep (``bench dose --grid-only``) says what it lacks before anything is read from it."""
    pending = doc.get("pending") or {}
    missing = [f"the recipes {', '.join(f'`{a}`' for a in pending['arms'])}"] if pending.get("arms") else []
    seeds = pending.get("seeds")  # the number of extra seeds not run (true in a dose.json of before)
    count = "the extra seeds" if seeds is True else f"{seeds} extra seed{'s' if seeds != 1 else ''}"
    missing += [f"{count} at the chosen point"] if seeds else []
    if not missing:
        return []
    return [
        f"**Partial sweep: {' and '.join(missing)} not run yet.** The choice below is among the recipes "
        "shown, on one seed; it is not the sweep's verdict."
    ]


def caveat_lines(doc: dict[str, Any]) -> list[str]:
    """Where the augmented texts' facts come from, in full (``augment_note``)."""
    return [f"**Caveat:** {doc['augment_note']}."] if doc.get("augment_note") else []


def summary(doc: dict[str, Any]) -> str:
    """README's short form: what is pending, each recipe's closed-book EM along the budgets and FT+RAG at the
    largest, the choice and its report-subset tests, the seeds, the caveat in brief (the tables and the
    caveat in full: docs/finetune.md)."""
    lines = pending_lines(doc)
    for arm in sorted(doc["arms"]):
        pts = [p for p in _grid(doc["report"]["points"]) if p["arm"] == arm]
        ems, budgets = (
            " / ".join(fmt_num(p["ft"]["em"]) for p in pts),
            " / ".join(str(p["budget"]) for p in pts),
        )
        top = pts[-1]
        lines.append(
            f"**{arm}**: closed-book EM {ems} at {budgets} exposures "
            f"({fmt_num(top.get('tokens_per_page'), 0)} tokens per page at {top['budget']}); "
            f"FT+RAG {_em(top['ft_rag'])} there."
        )
    verdict = verdict_lines(doc)[:2]
    if spread := doc.get("seed_spread"):
        ft = spread["ft"]
        n = len(spread["seeds"])
        verdict[-1] += f" Seeds at the chosen point: {n}, EM {ft['min']:.3f}–{ft['max']:.3f}."
    lines += verdict + study_lines(doc)
    if src := doc.get("fact_source"):
        lines.append(
            "Caveat: the augmented texts restate the pairs the question generator's rules read from each "
            f"page (the same from the page text as from the question file on {src['identical']} of "
            f"{src['pages']} pages), so they restate exactly the relations asked."
        )
    return "".join(f"- {line}\n" for line in lines)


def render(doc: dict[str, Any], png: str | None = None) -> str:
    out = [
        f"Profile `{doc['profile']}`; recipes {', '.join(f'`{a}`' for a in doc['arms'])}, budgets "
        f"{' / '.join(str(b) for b in doc['budgets'])} exposures ({doc['exposure_note']}). Report subset:",
        "",
        points_table(doc).rstrip("\n"),
        "",
    ]
    if png:
        out += [f"![closed-book EM and answer NLL vs tokens per page]({png})", ""]
    lines = [*caveat_lines(doc), *pending_lines(doc), *verdict_lines(doc), *study_lines(doc)]
    out += [f"- {line}" for line in lines]
    return "\n".join(out) + "\n"


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Closed-book EM and answer NLL (report subset) against tokens per evaluated page, one line per recipe,
    with base / prior / RAG EM as horizontal lines; the chosen point ringed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_em, ax_nll = fig.subplots(1, 2)
    pts = _grid(doc["report"]["points"])
    for arm in sorted({p["arm"] for p in pts}):
        mine = [p for p in pts if p["arm"] == arm]
        xs = [float(p.get("tokens_per_page") or 0) for p in mine]
        ax_em.plot(xs, [p["ft"]["em"] for p in mine], marker="o", label=arm)
        ax_nll.plot(xs, [p.get("answer_nll_after") for p in mine], marker="o", label=arm)
    for (name, label), style in zip(REFS, (":", "--", "-."), strict=True):
        em = (doc["report"]["reference"].get(name) or {}).get("em")
        if em is not None:
            ax_em.axhline(em, color="grey", linestyle=style, linewidth=1, label=label)
    ch = doc["chosen_on_report"]
    ax_em.plot(
        [ch.get("tokens_per_page")], [ch["ft"]["em"]], "o", ms=14, mfc="none", color="k", label="chosen"
    )
    for ax, ylabel in ((ax_em, "closed-book EM (report subset)"), (ax_nll, "answer NLL after training")):
        ax.set_xscale("log")
        ax.set_xlabel("training tokens per evaluated page (log)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax_em.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def render_estimate(est: dict[str, Any]) -> str:
    """``bench dose --dry-run``: records, steps and tokens per page per recipe and budget, then the hours."""
    rows = [
        [arm, str(r["budget"]), f"{r['records']:,}", f"{r['steps']:,}", "yes" if r["on_batch"] else "NO",
         fmt_num(r["tokens_per_page"], 0)]
        for arm, a in est["arms"].items() for r in a["budgets"]
    ]  # fmt: skip
    head = ["recipe", "exposures", "records", "steps", "on a batch boundary", "tokens / page"]
    hours = ", ".join(f"{h} h at {s:g} s/step" for h, s in zip(est["hours"], est["s_per_step"], strict=True))
    by_tok = zip(est["hours_by_tokens"], est["tokens_per_s"], strict=True)
    hours += f"; {est['tokens_total']:,} tokens: " + ", ".join(f"{h} h at {r:g} tokens/s" for h, r in by_tok)
    return (
        table(head, rows)
        + f"\nTraining: {est['steps_total']:,} optimizer steps (one run per recipe at the largest budget, "
        f"the extra seeds priced at the largest budget): {hours}; plus answering every point on both "
        "subsets.\n"
    )
