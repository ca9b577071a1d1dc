"""Accuracy-vs-latency plots for the report (matplotlib Agg, deterministic PNG bytes)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.check import mean_of, ordered_variants

COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:gray"]
VARIANT_LABELS = {"base": "base", "rag": "RAG", "ft": "FT", "ft_rag": "FT+RAG", "oracle": "oracle"}


def vlabel(name: str) -> str:
    return VARIANT_LABELS.get(name, name)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot(runs: list[tuple[str, dict[str, Any]]], path: Path, title: str) -> bool:
    """F1 (●) and containment (▲) vs p50 latency per variant and run; False when nothing to plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = COLORS
    drawn = 0
    for ri, (_, scores) in enumerate(runs):
        variants = scores.get("variants") or {}
        for vi, name in enumerate(ordered_variants(variants)):
            v = variants[name] if isinstance(variants[name], dict) else {}
            x = mean_of(v.get("latency_p50_ms"))
            if x is None:
                continue
            color = colors[vi % len(colors)]
            for key, marker in (("f1", "o"), ("contains", "^")):
                y = mean_of(v.get(key))
                if y is not None:
                    ax.scatter([x], [y], marker=marker, color=color, s=50)
                    drawn += 1
            y_text = mean_of(v.get("f1")) or mean_of(v.get("contains")) or 0.0
            tag = vlabel(name) if len(runs) == 1 else f"{vlabel(name)} (run {ri + 1})"
            ax.annotate(tag, (x, y_text), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if not drawn:
        return False
    ax.set_xlabel("latency p50 (ms)")
    ax.set_ylabel("score (● F1, ▲ containment)")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    _atomic_write_bytes(path, buf.getvalue())
    return True
