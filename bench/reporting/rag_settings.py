"""The RAG settings sweep (``bench rag-sweep``, :mod:`bench.eval.rag_sweep`) as Markdown, from its
``settings.json`` only: every point's EM on the selection subset (where the choice is made) and on the report
subset (where it is judged), each against the profile's own setting, Holm-corrected over the points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.eval.rag_sweep import SETTINGS
from bench.io import read_json
from bench.reporting.tables import table

SWEEP = Path("sweeps") / "rag-settings"  # under results/


def _em(row: dict[str, Any] | None) -> str:
    if not row:
        return "–"
    ci = row.get("ci95") or [None, None]
    band = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if None not in ci else ""
    return f"{row['em']:.3f}{band}"


def _vs(row: dict[str, Any] | None, is_ref: bool) -> str:
    if not row or is_ref:
        return "reference" if row else "–"
    star = " ✔" if row.get("significant_holm") else ""
    return (
        f"{row['diff']:+.3f} ({row['b10']}↑/{row['b01']}↓, p {row['p_value']:.3g}, "
        f"Holm {row.get('p_holm', 1.0):.3g}{star})"
    )


def render(root: Path) -> str:
    doc = read_json(root / SETTINGS)
    sel, rep = doc.get("selection") or {}, doc.get("report") or {}
    ref, chosen = doc["reference"], doc.get("chosen")
    rows = []
    for name in sel.get("points") or {}:
        s, r = sel["points"][name], (rep.get("points") or {}).get(name)
        label = f"**{name}** (chosen)" if name == chosen else name
        rows.append([label, _em(s), _vs(s, name == ref), _em(r), _vs(r, name == ref)])
    head = ["setting (k, order, page only)", "selection EM", "vs reference", "report EM", "vs reference"]
    lines = [
        f"Variant `{doc['variant']}` of profile `{doc['profile']}`; k = passages read, first/last = the best "
        "passage first or nearest the question, page = only the top hit's page. Chosen on the selection "
        f"subset (n = {sel.get('n')}), judged on the disjoint report subset (n = {rep.get('n')}); "
        f"reference = the profile's setting ({ref}). Differences are paired (McNemar; ↑ = questions only "
        f"this setting answers, ↓ = only the reference); Holm over the {len(sel.get('points') or {}) - 1} "
        "other points.",
        "",
        table(head, rows).rstrip("\n"),
        "",
    ]
    if (c := doc.get("chosen_on_report")) and chosen != ref:
        lines.append(
            f"On the report subset the chosen setting ({chosen}) scores {c['em']:.3f}, {c['diff']:+.3f} "
            f"against the reference ({c['b10']}↑/{c['b01']}↓, McNemar p {c['p_value']:.3g}: one planned "
            "comparison)."
        )
    elif chosen == ref:
        lines.append(f"The selection subset keeps the profile's setting ({ref}).")
    worse = doc.get("worse_on_report") or []
    lines.append(
        "Significantly worse than the reference on the report subset after Holm: "
        + (", ".join(worse) if worse else "none")
        + "."
    )
    return "\n".join(lines) + "\n"
