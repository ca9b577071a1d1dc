"""Accuracy-vs-latency plots for the report (matplotlib Agg, deterministic PNG bytes).

One panel per accuracy metric (EM, then F1 without the question's words — ``f1_qstripped`` — or plain F1 /
containment when a run lacks it), latency p50 on x. One colour per variant, one marker per run, the 95 %
interval as a vertical error bar, a legend outside the axes instead of text next to the points. No-model
baselines (``echo``, ``picker_oracle``, ``picker_rag``) are drawn as horizontal reference lines.
"""

from __future__ import annotations

import functools
import io
import textwrap
import typing
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from bench.core.schema import mean_of, ordered_variants
from bench.io import atomic_write_bytes
from bench.variant_specs import BASELINES, SPECS

VARIANT_LABELS = {s.name: s.label for s in SPECS}  # bench.variant_specs: labels, colours, order
# What the gold context of a run is: ptwiki fact questions carry the one lead sentence they were generated
# from, FaQuAD questions their paragraph. Set per rendered run (:func:`per_run`); read by :func:`vlabel`.
GOLD: ContextVar[str] = ContextVar("gold", default="gold context")
VARIANT_COLORS = {s.name: s.color for s in SPECS}
COLORS = ["black", "lime", "gold", "navy", "teal"]  # variants not named above, in order
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]  # one per run
LINESTYLES: list[Any] = ["--", ":", "-.", (0, (5, 1))]  # one per run, for the reference lines
PANELS = (  # (candidate metric keys in order of preference, axis label)
    (("exact_match",), "exact match"),
    (("f1_qstripped", "f1", "contains"), "{key}"),
)
METRIC_LABELS = {"f1_qstripped": "F1 (question words removed)", "f1": "token F1", "contains": "containment"}


def vlabel(name: str) -> str:
    return VARIANT_LABELS.get(name, name).format(gold=GOLD.get())


def gold_of(scores: Any) -> str:
    """ "gold sentence" for a run of ptwiki fact questions, "gold paragraph" for other question files."""
    raw = getattr(scores, "raw", scores)
    questions = str(((raw or {}).get("config") or {}).get("questions") or "")
    if not questions:
        return "gold context"
    return "gold sentence" if "ptwiki-facts" in questions else "gold paragraph"


F = TypeVar("F", bound=Callable[..., Any])


def per_run(fn: F) -> F:
    """Render ``fn(scores, ...)`` with the variant labels of that run (:data:`GOLD`)."""

    @functools.wraps(fn)
    def inner(scores: Any, *args: Any, **kwargs: Any) -> Any:
        token = GOLD.set(gold_of(scores))
        try:
            return fn(scores, *args, **kwargs)
        finally:
            GOLD.reset(token)

    return typing.cast(F, inner)


def _variants(scores: dict[str, Any]) -> dict[str, dict[str, Any]]:
    v = scores.get("variants") or {}
    return {n: v[n] for n in ordered_variants(v) if isinstance(v[n], dict)}


def color_of(name: str, names: list[str]) -> str:
    if name in VARIANT_COLORS:
        return VARIANT_COLORS[name]
    others = [n for n in names if n not in VARIANT_COLORS]
    return COLORS[others.index(name) % len(COLORS)]


def panel_keys(runs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    """(metric key, axis label) per panel: the first candidate any run has; a panel nobody has is left out."""
    present = {k for _, s in runs for v in _variants(s).values() for k in v if mean_of(v.get(k)) is not None}
    out: list[tuple[str, str]] = []
    for candidates, label in PANELS:
        key = next((k for k in candidates if k in present and k not in {o for o, _ in out}), None)
        if key is not None:
            out.append((key, label.format(key=METRIC_LABELS.get(key, key))))
    return out


def _interval(value: Any, y: float) -> tuple[float, float]:
    ci = value.get("ci95") if isinstance(value, dict) else None
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(mean_of(c) is not None for c in ci):
        return max(0.0, y - float(ci[0])), max(0.0, float(ci[1]) - y)
    return 0.0, 0.0


def _draw_panel(ax: Any, runs: list[tuple[str, dict[str, Any]]], key: str, names: list[str]) -> list[float]:
    """Draw one metric's points and reference lines; returns the upper ends of what was drawn."""
    tops: list[float] = []
    for ri, (_, scores) in enumerate(runs):
        for name, v in _variants(scores).items():
            y = mean_of(v.get(key))
            if y is None:
                continue
            color = color_of(name, names)
            if name in BASELINES:
                ax.axhline(y, color=color, linestyle=LINESTYLES[ri % len(LINESTYLES)], linewidth=1.3)
                tops.append(y)
                continue
            x = mean_of(v.get("latency_p50_ms"))
            if x is None:
                continue
            lo, hi = _interval(v.get(key), y)
            ax.errorbar(
                [x], [y], yerr=[[lo], [hi]], fmt=MARKERS[ri % len(MARKERS)], color=color,
                markersize=8, capsize=4, elinewidth=1.2, markeredgecolor="black", markeredgewidth=0.6,
            )  # fmt: skip
            tops.append(y + hi)
    return tops


def _legend_handles(runs: list[tuple[str, dict[str, Any]]], names: list[str]) -> tuple[list[Any], list[str]]:
    from matplotlib.lines import Line2D

    handles: list[Any] = []
    labels: list[str] = []
    for name in names:
        baseline = name in BASELINES
        handles.append(
            Line2D([], [], color=color_of(name, names), marker=None if baseline else "o",
                   linestyle="--" if baseline else "none", markersize=8, markeredgecolor="black")
        )  # fmt: skip
        labels.append(vlabel(name) + (" — no model, reference line" if baseline else ""))
    for ri, (label, _) in enumerate(runs):
        handles.append(
            Line2D([], [], color="dimgray", marker=MARKERS[ri % len(MARKERS)], linestyle=LINESTYLES[ri % 4],
                   markersize=8)
        )  # fmt: skip
        labels.append(textwrap.fill(f"run {ri + 1}: {label}", 46))
    return handles, labels


def plot(runs: list[tuple[str, dict[str, Any]]], path: Path, title: str) -> bool:
    """One panel per metric (EM, F1/containment) vs p50 latency; False when there is nothing to plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = panel_keys(runs)
    names = ordered_variants({n for _, s in runs for n in _variants(s)})
    if not panels or not names:
        return False
    fig = Figure(figsize=(5.2 * len(panels) + 3.6, 5.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    tops: list[float] = []
    for ax, (key, label) in zip(axes, panels, strict=True):
        tops += _draw_panel(ax, runs, key, names)
        ax.set_xlabel("latency p50 per question (ms)")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
        xs = [
            x
            for _, s in runs
            for n, v in _variants(s).items()
            if n not in BASELINES and (x := mean_of(v.get("latency_p50_ms")))
        ]
        if xs and min(xs) > 0 and max(xs) / min(xs) > 30:
            ax.set_xscale("log")
    if not tops:
        return False
    axes[0].set_ylim(-0.02, min(1.02, max(0.3, max(tops) + 0.08)))  # y is shared by the panels
    axes[0].set_ylabel("score (mean, 95 % interval)")
    handles, labels = _legend_handles(runs, names)
    save_figure(fig, handles, labels, title, path)
    return True


def save_figure(fig: Any, handles: list[Any], labels: list[str], title: str, path: Path) -> None:
    """Legend outside the axes, title, deterministic PNG bytes (no software tag), written atomically."""
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
