"""The report's cost table: per variant, the one-off build cost (index, adapter) that
:mod:`bench.eval.costs` recorded in ``scores.json["costs"]``, beside latency, memory and accuracy."""

from __future__ import annotations

from typing import Any

from bench.eval.variants import get_spec
from bench.reporting.tables import fmt_metric, table


def _build_cell(name: str, spec: Any, costs: dict[str, Any]) -> str:
    parts = []
    idx, ft = costs.get("index"), costs.get("finetune")
    if spec.uses_retrieval:
        if idx:
            parts.append(f"index: {idx.get('chunks') or 0:,} chunks, {_secs(idx.get('build_s'))}")
        else:
            parts.append("index: not recorded")
    if spec.uses_adapter:
        if ft:
            parts.append(
                f"training: {_secs(ft.get('train_time_s'))}, {int(ft.get('tokens_seen') or 0):,} tokens "
                f"({ft.get('epochs')} epochs over {ft.get('pages') or ft.get('train_records')} "
                f"{'pages' if ft.get('pages') else 'records'}), peak RSS {_mb(ft.get('peak_rss_mb'))}"
            )
        else:
            parts.append("training: not recorded")
    return "; ".join(parts) or "none"


def _mb(value: Any) -> str:
    return "? MB" if value is None else f"{float(value):,.0f} MB"


def _secs(value: Any) -> str:
    return "? s" if value is None else f"{float(value):,.0f} s"


def render_costs(scores: dict[str, Any]) -> str | None:
    """Per variant: one-off build cost, per-question latency and memory, accuracy; None without costs."""
    costs = scores.get("costs")
    variants = scores.get("variants") or {}
    if not costs or not variants:
        return None
    rows = []
    for name, v in variants.items():
        try:
            spec = get_spec(name)
        except Exception:  # a variant this checkout does not know: no cost row
            continue
        latency = v.get("latency_p50_ms")
        rows.append(
            [
                name,
                _build_cell(name, spec, costs),
                "–" if latency is None else f"{float(latency):,.0f}",
                "–" if v.get("peak_rss_mb") is None else f"{float(v['peak_rss_mb']):,.0f}",
                fmt_metric(v.get("exact_match"), interval=False),
                fmt_metric(v.get("f1_qstripped"), interval=False),
            ]
        )
    header = ["variant", "one-off build", "p50 ms / question", "peak RSS MB", "EM", "F1 (q. words removed)"]
    return table(header, rows)
