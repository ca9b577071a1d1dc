"""The "Learning curve" report section, rendered from a sweep's ``scores.json`` files (bench/eval/sweep.py).

A table (one row per point: its axes, the exposures the adapter got, the injection probe, FT and FT+RAG
scores with 95 % intervals) and a PNG of EM / question-stripped F1 against training tokens, one line per
training format, with base, RAG and the no-model pickers of the reference point as horizontal lines. The
reference point is also the curve's 0-token point (the untrained model: FT = base, FT+RAG = RAG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import ALIASES
from bench.core.machine import machine_line
from bench.core.schema import mean_of
from bench.eval.scoring import METRICS as REGISTRY
from bench.eval.sweep import REFERENCE, check_points, load_sweep, provenance
from bench.reporting.plots import VARIANT_COLORS, per_run, save_figure, vlabel
from bench.reporting.tables import DASH, fmt_metric, fmt_num, table

# the registry's headline metrics (EM, question-stripped F1), in registry order
METRICS = tuple((m.name, m.label) for m in REGISTRY.values() if m.headline)
REFERENCE_LINES = ("base", "rag", "prior", "picker_oracle", "picker_rag", "span_oracle", "span_rag")
LINESTYLES = ("-", "--", ":", "-.")


def _cost(scores: dict[str, Any]) -> dict[str, Any]:
    return (scores.get("costs") or {}).get("finetune") or {}


def _series_key(axes: dict[str, str]) -> str:
    """Points on one curve share every axis but the budget (epochs / max_steps)."""
    rest = {k: v for k, v in axes.items() if k.rsplit(".", 1)[-1] not in ("epochs", "max_steps")}
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in rest.items()) or "FT"


def curve_rows(manifest: dict[str, Any], scores: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per point, sorted by series then tokens seen; the reference gives every series its 0."""
    ref = scores.get(REFERENCE) or {}
    rv = ref.get("variants") or {}
    rows: list[dict[str, Any]] = []
    series = sorted({_series_key(p["axes"]) for p in manifest["points"] if p["name"] != REFERENCE})
    for s in series:
        rows.append(
            {
                "series": s,
                "point": REFERENCE,
                "epochs": 0.0,
                "tokens_seen": 0,
                "train_s": 0.0,
                "ft": rv.get("base"),
                "ft_rag": rv.get("rag"),
                "probe": {},
            }
        )
    for p in manifest["points"]:
        if p["name"] == REFERENCE:
            continue
        sc = scores[p["name"]]
        cost = _cost(sc)
        v = sc.get("variants") or {}
        rows.append(
            {
                "series": _series_key(p["axes"]),
                "point": p["name"],
                "epochs": cost.get("epochs"),
                "tokens_seen": cost.get("tokens_seen"),
                "train_s": cost.get("train_time_s"),
                "pages": cost.get("pages"),
                "scope": cost.get("scope"),
                "ft": v.get("ft"),
                "ft_rag": v.get("ft_rag"),
                "probe": cost.get("probe") or {},
            }
        )
    rows.sort(key=lambda r: (r["series"], mean_of(r["tokens_seen"]) or 0.0))
    return rows


def _ppl(probe: dict[str, Any], name: str) -> str:
    before, after = probe.get(f"ppl_{name}_before"), probe.get(f"ppl_{name}_after")
    if before is None or after is None:
        return DASH
    return f"{float(before):.1f} → {float(after):.1f}"


def render_curve_table(rows: list[dict[str, Any]]) -> str:
    header = ["series", "epochs", "tokens seen", "train s", "ppl trained", "ppl held-out"]
    header += [f"{v} {label}" for v in ("FT", "FT+RAG") for _, label in METRICS]
    body = []
    for r in rows:
        cells = [
            r["series"],
            fmt_num(r["epochs"], 2),
            f"{int(r['tokens_seen'] or 0):,}",
            fmt_num(r["train_s"], 0),
        ]
        cells += [_ppl(r["probe"], "trained"), _ppl(r["probe"], "heldout")]
        for v in ("ft", "ft_rag"):
            cells += [fmt_metric((r[v] or {}).get(m)) for m, _ in METRICS]
        body.append(cells)
    return table(header, body)


@per_run
def render_reference(scores: dict[str, Any]) -> str:
    v = scores.get("variants") or {}
    rows = [
        [vlabel(n), *(fmt_metric((v.get(n) or {}).get(m)) for m, _ in METRICS)]
        for n in REFERENCE_LINES
        if n in v
    ]
    return table(["reference (untrained model / no model)", *(label for _, label in METRICS)], rows)


def plot_curve(rows: list[dict[str, Any]], reference: dict[str, Any], path: Path, title: str) -> bool:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        return False
    fig = Figure(figsize=(12.5, 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(METRICS), sharey=True, squeeze=False)[0]
    series = sorted({r["series"] for r in rows})
    ref = reference.get("variants") or {}
    for ax, (metric, label) in zip(axes, METRICS, strict=True):
        for i, s in enumerate(series):
            pts = [r for r in rows if r["series"] == s]
            xs = [float(r["tokens_seen"] or 0) for r in pts]
            for v in ("ft", "ft_rag"):
                ys = [mean_of((r[v] or {}).get(metric)) for r in pts]
                cis = [((r[v] or {}).get(metric) or {}).get("ci95") for r in pts]
                lo = [y - c[0] if y is not None and c else 0 for y, c in zip(ys, cis, strict=True)]
                hi = [c[1] - y if y is not None and c else 0 for y, c in zip(ys, cis, strict=True)]
                ax.errorbar(
                    xs,
                    [y if y is not None else float("nan") for y in ys],
                    yerr=[lo, hi],
                    color=VARIANT_COLORS[v],
                    linestyle=LINESTYLES[i % len(LINESTYLES)],
                    marker="o",
                    capsize=3,
                    label=vlabel(v) + (f" ({s})" if len(series) > 1 else ""),
                )
        for n in REFERENCE_LINES:
            y = mean_of((ref.get(n) or {}).get(metric))
            if y is not None:
                ax.axhline(
                    y,
                    color=VARIANT_COLORS[n],
                    linewidth=1,
                    alpha=0.7,
                    linestyle=(0, (2, 2)),
                    label=f"{vlabel(n)} (reference)",
                )
        top = max((float(r["tokens_seen"] or 0) for r in rows), default=0.0) or 1.0
        ax.set_xlim(-0.04 * top, 1.06 * top)  # linear: the budgets are a few evenly spread points
        ax.set_xlabel("training tokens seen (0 = untrained model)")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("score (mean, 95 % interval)")
    handles, labels = axes[0].get_legend_handles_labels()
    save_figure(fig, handles, labels, title, path)
    return True


def render_section(root: Path, png: Path | None = None) -> str:
    """The "Learning curve" section (Markdown) for the sweep in ``root``; the PNG is written to ``png``."""
    manifest, scores = load_sweep(root)
    same, refused = check_points(scores)
    kept = {**manifest, "points": [p for p in manifest["points"] if p["name"] not in refused]}
    rows = curve_rows(kept, scores)
    ref = scores.get(REFERENCE) or {}
    out = [f"## Learning curve — sweep `{manifest['name']}` (profile {manifest['profile']})", ""]
    axes = ", ".join(f"`{k}` ∈ {{{', '.join(v)}}}" for k, v in (manifest.get("axes") or {}).items())
    out += [f"Grid: {axes or 'none'}; fixed: {', '.join(f'`{o}`' for o in _fixed(manifest)) or 'none'}.", ""]
    out += [provenance_caption(ref, same, refused, scores), ""]
    if png is not None and plot_curve(rows, ref, png, f"sweep {manifest['name']}: FT and FT+RAG vs training"):
        out += [f"![learning curve]({png.name})", ""]
    out += [render_curve_table(rows), render_reference(ref)]
    out += [
        "What it shows (generated from the rows above):",
        "",
        *(f"- {line}" for line in summarize_curve(rows)),
    ]
    return "\n".join(out) + "\n"


def provenance_caption(
    ref: dict[str, Any], same: list[str], refused: dict[str, str], scores: dict[str, dict[str, Any]]
) -> str:
    """Where the reference lines and the 0 point come from, and what the curve refused or flags."""
    p = provenance(ref)
    text = (
        f"Reference (0-token point and horizontal lines): point `{REFERENCE}` of this sweep, run "
        f"`{ref.get('run_id') or DASH}` — index {p['index'] or DASH} ({p['retriever']}), question file "
        f"{str(p['questions'] or DASH)[:12]}; the same index and questions as "
        f"{', '.join(f'`{n}`' for n in same) or 'no other point'}."
    )
    for name, why in refused.items():
        text += f" ⚠ Point `{name}` is left off the curve: {why}."
    dirty = [n for n, s in scores.items() if (s.get("env") or {}).get("git_dirty")]
    if dirty:
        text += f" ⚠ Produced from a tree with uncommitted changes: {', '.join(f'`{n}`' for n in dirty)}."
    return text


def _fixed(manifest: dict[str, Any]) -> list[str]:
    """The sweep's fixed overrides, a deprecated key spelled as the key it now is (bench.config.ALIASES)."""
    axes = set(manifest.get("axes") or {})
    out = []
    for o in manifest.get("overrides") or []:
        key, _, value = o.partition("=")
        if key.strip() not in axes:
            out.append(f"{ALIASES.get(key.strip(), key.strip())}={value}" if value else o)
    return out


def summarize_curve(rows: list[dict[str, Any]]) -> list[str]:
    """One generated sentence per series: what the budget did to FT, FT+RAG and the probe (numbers from
    the rows, so the README's statement of what the curve shows is rendered, never typed)."""
    out = []
    for s in sorted({r["series"] for r in rows}):
        pts = [r for r in rows if r["series"] == s]
        first, last = pts[0], pts[-1]
        if first is last:
            continue

        def em(r: dict[str, Any], v: str) -> str:
            return fmt_num((r[v] or {}).get("exact_match"))

        best = max(pts, key=lambda r: mean_of((r["ft"] or {}).get("exact_match")) or 0.0)
        text = (
            f"**{s}**: from the untrained model to {fmt_num(last['epochs'], 1)} epochs "
            f"({int(last['tokens_seen'] or 0):,} tokens seen), FT EM {em(first, 'ft')} → {em(last, 'ft')} "
            f"(best {em(best, 'ft')} at {fmt_num(best['epochs'], 1)} epochs), "
            f"FT+RAG EM {em(first, 'ft_rag')} → {em(last, 'ft_rag')}"
        )
        probe = last["probe"]
        if probe.get("ppl_trained_before") is not None:
            text += f"; perplexity of the trained pages {_ppl(probe, 'trained')}"
        if probe.get("ppl_heldout_before") is not None:
            text += f", of held-out pages {_ppl(probe, 'heldout')}"
        out.append(text + ".")
    return out


def render_train_speed(result: dict[str, Any]) -> str:
    """``results/perf/train-speed.json`` (tests/perf/test_perf_train.py) as a table and one line."""
    tps, sps = result.get("tokens_per_s") or {}, result.get("s_per_step") or {}
    configs = result.get("configs") or {}
    rows = [
        [name, " ".join(f"`{c}`" for c in configs.get(name, [])) or DASH,
         str((result.get("precision") or {}).get(name, DASH)), fmt_num(sps.get(name), 2),
         fmt_num(tps.get(name), 1), fmt_num((result.get("final_loss") or {}).get(name), 4)]
        for name in [n for n in ("previous", "fp32", "bf16") if n in tps] + [n for n in tps if n not in
                                                                             ("previous", "fp32", "bf16")]
    ]  # fmt: skip
    header = [
        "path",
        "settings",
        "precision",
        "s/step",
        "tokens/s",
        f"loss after {result.get('steps')} steps",
    ]
    met = "met" if result.get("goal_met") else "not met"
    return table(header, rows) + (
        f"\nDefault (bf16) over the previous path: **{fmt_num(result.get('ratio_bf16_over_previous'), 2)}×** "
        f"tokens/s (goal {result.get('goal')}×: {met}); of which bf16 alone "
        f"{fmt_num(result.get('ratio_bf16_over_fp32'), 2)}× and the plain loss without LoRA dropout "
        f"{fmt_num(result.get('ratio_fp32_over_previous'), 2)}×. Final losses of bf16 and the previous path "
        f"differ by {fmt_num(100 * float(result.get('final_loss_rel_gap') or 0), 2)} %. "
        f"{result.get('batch')}, {result.get('threads')} threads, {result.get('cpu') or 'CPU not recorded'}; "
        f"{result.get('order')}."
        + (f" Machine: {machine_line(m)}.\n" if isinstance(m := result.get("machine"), dict) else "\n")
    )
