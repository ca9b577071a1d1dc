"""The LLM judge's table (from a run's ``judge.json``, bench/eval/judge.py): per variant, ragas answer
correctness and faithfulness (mean over the answers whose verdict parsed, n, unparseable), then how far to
trust it: its agreement with exact match on the short-answer questions (rate, Cohen's kappa, n, counts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.schema import ordered_variants
from bench.io import read_json
from bench.reporting.tables import DASH, table

METRIC_LABELS = {"answer_correctness": "answer correctness", "faithfulness": "faithfulness"}


def _num(x: Any, digits: int = 3) -> str:
    return DASH if x is None else f"{float(x):.{digits}f}"


def agreement_line(agree: dict[str, Any]) -> str:
    if not agree.get("n"):
        short = agree.get("short_tokens", DASH)
        return (
            f"Agreement with EM: no short-answer question (gold ≤ {short} words) got a parsed correctness "
            "verdict, so it is unknown: do not trust these scores yet."
        )
    counts = (
        f"both right {agree['both_right']}, judge only {agree['judge_only']}, "
        f"EM only {agree['em_only']}, both wrong {agree['both_wrong']}"
    )
    return (
        f"Agreement with EM on {agree['n']} short-answer questions (gold ≤ {agree['short_tokens']} words; "
        f"the judge says right when answer correctness ≥ {agree['threshold']:g}): {_num(agree['rate'])}, "
        f"Cohen's κ {_num(agree['kappa'])} ({counts})."
    )


def render_judge(run_dir: Path) -> tuple[str, str] | None:
    """(heading, Markdown) of the run's judge table; None when the run was not judged."""
    path = run_dir / "judge.json"
    if not path.exists():
        return None
    j = read_json(path)
    metrics = j.get("metrics") or {}
    names = [m for m in METRIC_LABELS if any(m in by for by in metrics.values())]
    header = ["variant"] + [f"{METRIC_LABELS[m]} {h}" for m in names for h in ("", "n", "unparseable")]
    rows = []
    for variant in ordered_variants(metrics):
        cells = [variant]
        for m in names:
            c = metrics[variant].get(m) or {}
            cells += [_num(c.get("mean")), str(c.get("n", DASH)), str(c.get("unparseable", DASH))]
        rows.append(cells)
    judge, calls = j.get("judge") or {}, j.get("calls") or {}
    heading = f"LLM judge: ragas {judge.get('ragas', DASH)}, judge model {judge.get('model', DASH)}"
    errors = (
        f"; {calls['transport_errors']} not answered (rerun to ask again)"
        if calls.get("transport_errors")
        else ""
    )
    asked = f"{calls.get('verdicts', DASH)} verdicts{errors}"
    body = [
        table([h.strip() for h in header], rows).rstrip("\n"),
        agreement_line(j.get("agreement") or {}),
        f"{asked}; each with the judge's raw completions in judge.jsonl.",
    ]
    return heading, "\n\n".join(body) + "\n"
