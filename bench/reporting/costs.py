"""The report's cost table: per variant, the one-off build cost (index, adapter) that
:mod:`bench.eval.costs` recorded in ``scores.json["costs"]``, beside latency, memory and accuracy."""

from __future__ import annotations

from typing import Any

from bench.eval.variants import get_spec
from bench.recipe_keys import AUG_TEXTS, SCHEDULED
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


def render_ft_arm(scores: dict[str, Any]) -> str:
    """One sentence on the FT variants' adapter, from the run's config and recorded training: recipe,
    passes, views, the length floor, cost, and how many evaluated pages and questions it trained on."""
    ft_cfg = (scores.get("config") or {}).get("finetune") or {}
    ft = (scores.get("costs") or {}).get("finetune")
    if not ft:
        return "not trained in this run.\n"
    views = ", ".join(ft_cfg.get("views") or ft.get("views") or []) or "–"
    floor = int(ft_cfg.get("min_text_chars") or 0)
    recipe = str(ft_cfg.get("recipe", "?"))
    augmented = int(ft_cfg.get("augment") or (AUG_TEXTS if recipe == "aug" else 0))
    per_pass = len(ft_cfg.get("views") or []) * max(int(ft_cfg.get("page_chunks") or 0), 1) + augmented
    exposures = (
        f", {float(ft.get('epochs') or 0) * per_pass:.0f} exposures of each page in all"
        if recipe in SCHEDULED and per_pass
        else ""
    )
    text = (
        f"recipe `{recipe}`, {ft.get('epochs')} passes over each trained page's "
        f"{ft_cfg.get('page_part', 'lead')} (views {views}"
        + (f", plus {augmented} rule-based restatements of its facts" if augmented else "")
        + (f"; texts under {floor} characters dropped, `finetune.min_text_chars`" if floor else "")
        + f"){exposures}, {int(ft.get('steps') or 0):,} steps, {int(ft.get('tokens_seen') or 0):,} tokens in "
        f"{_secs(ft.get('train_time_s'))}; "
    )
    cov = ft.get("coverage")
    if not cov:
        return text + "trained pages not recorded (this adapter predates the coverage record).\n"
    share = cov["trained_pages"] / cov["evaluated_pages"] if cov.get("evaluated_pages") else 0.0
    return text + (
        f"it trained on {cov['trained_pages']} of {cov['evaluated_pages']} evaluated pages ({share:.0%}), "
        f"{cov['trained_questions']} of {cov['evaluated_questions']} questions.\n"
    )
