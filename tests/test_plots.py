"""Accuracy-vs-latency plots: panels, colours per variant, markers per run, intervals, baseline lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.reporting import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def m(mean: float, half: float = 0.05) -> dict[str, Any]:
    return {"mean": mean, "ci95": [round(max(0.0, mean - half), 4), round(min(1.0, mean + half), 4)]}


def synthetic_scores(shift: float = 0.0, qstripped: bool = True, baselines: bool = True) -> dict[str, Any]:
    model = {
        "base": (0.02, 0.25, 2661.0),
        "rag": (0.16, 0.44, 3190.0),
        "ft": (0.01, 0.23, 2986.0),
        "ft_rag": (0.18, 0.42, 3787.0),
        "oracle": (0.21, 0.45, 2967.0),
    }
    variants: dict[str, Any] = {}
    for name, (em, f1, ms) in model.items():
        v = {"exact_match": m(em + shift, 0.04), "f1": m(f1 + shift), "latency_p50_ms": ms * (1 + shift)}
        if qstripped:
            v["f1_qstripped"] = m(f1 - 0.05 + shift, 0.06)
        variants[name] = v
    if baselines:
        variants["echo"] = {"exact_match": m(0.0, 0.0), "f1_qstripped": m(0.04, 0.01), "latency_p50_ms": 0.1}
        variants["picker_oracle"] = {"exact_match": m(0.05), "f1_qstripped": m(0.31), "latency_p50_ms": 1.0}
        variants["picker_rag"] = {"exact_match": m(0.03), "f1_qstripped": m(0.27), "latency_p50_ms": 40.0}
    return {"variants": variants}


def test_panel_keys_prefer_qstripped_f1_and_fall_back() -> None:
    assert plots.panel_keys([("a", synthetic_scores())]) == [
        ("exact_match", "exact match"),
        ("f1_qstripped", "F1 (question words removed)"),
    ]
    old = synthetic_scores(qstripped=False, baselines=False)
    assert [k for k, _ in plots.panel_keys([("a", old)])] == ["exact_match", "f1"]
    only_contains = {"variants": {"base": {"contains": m(0.3), "latency_p50_ms": 10.0}}}
    assert plots.panel_keys([("a", only_contains)]) == [("contains", "containment")]
    assert plots.panel_keys([("a", {"variants": {}})]) == []


def test_colours_are_per_variant_and_stable() -> None:
    names = ["base", "rag", "zeta", "alpha"]
    assert plots.color_of("rag", names) == plots.VARIANT_COLORS["rag"]
    assert (
        plots.color_of("zeta", names) == plots.COLORS[0] and plots.color_of("alpha", names) == plots.COLORS[1]
    )
    assert len(set(plots.VARIANT_COLORS.values())) == len(plots.VARIANT_COLORS)


def test_plot_two_runs_with_baselines(tmp_path: Path) -> None:
    runs = [
        ("cpu · transformers · bfloat16 · qwen2.5-coder-0.5b", synthetic_scores()),
        ("cuda · transformers · bfloat16 · qwen2.5-coder-0.5b", synthetic_scores(shift=0.03)),
    ]
    out = tmp_path / "plot.png"
    assert plots.plot(runs, out, "questions/faquad.jsonl: accuracy vs latency")
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 20_000
    again = tmp_path / "again.png"
    plots.plot(runs, again, "questions/faquad.jsonl: accuracy vs latency")
    assert again.read_bytes() == data  # deterministic bytes


def test_plot_draws_the_interval_and_legend(tmp_path: Path) -> None:
    """The figure's artists: one error bar per model variant and run, one reference line per baseline."""
    from matplotlib.axes import Axes

    seen: dict[str, list[Any]] = {"errorbar": [], "axhline": [], "legend": []}
    real_errorbar, real_axhline = Axes.errorbar, Axes.axhline

    def errorbar(self: Axes, x: Any, y: Any, yerr: Any = None, **kw: Any) -> Any:
        seen["errorbar"].append((x[0], y[0], yerr[0][0], yerr[1][0], kw["fmt"], kw["color"]))
        return real_errorbar(self, x, y, yerr=yerr, **kw)

    def axhline(self: Axes, y: float = 0, **kw: Any) -> Any:
        seen["axhline"].append((y, kw["color"]))
        return real_axhline(self, y, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Axes, "errorbar", errorbar)
        mp.setattr(Axes, "axhline", axhline)
        runs = [("run a", synthetic_scores()), ("run b", synthetic_scores(shift=0.03, baselines=False))]
        assert plots.plot(runs, tmp_path / "p.png", "t")
    assert len(seen["errorbar"]) == 2 * 5 * 2  # 2 panels × 5 model variants × 2 runs
    rag_em = next(e for e in seen["errorbar"] if e[5] == plots.VARIANT_COLORS["rag"] and e[4] == "o")
    assert rag_em[:4] == pytest.approx((3190.0, 0.16, 0.04, 0.04))  # latency, EM, and its 95 % interval
    assert {e[4] for e in seen["errorbar"]} == {"o", "s"}  # one marker per run
    assert len(seen["axhline"]) == 2 * 3  # 3 baselines (run a only) in 2 panels
    assert (0.31, plots.VARIANT_COLORS["picker_oracle"]) in seen["axhline"]


def test_nothing_to_plot(tmp_path: Path) -> None:
    no_latency = {"variants": {"base": {"f1": m(0.3)}}}
    assert not plots.plot([("a", no_latency)], tmp_path / "x.png", "t")
    assert not (tmp_path / "x.png").exists()
