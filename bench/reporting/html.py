"""``results/REPORT.html``: one self-contained page beside REPORT.md, from the same result files.

Inline CSS and JavaScript (:mod:`bench.reporting.html_assets`), the plots as ``data:`` URIs, no external URL:
it opens from disk with no server. Per question set: its plot and, per run, the results table (the Markdown
table of REPORT.md, converted) and the judge table when the run has one; then every question of every run
with each variant's answer side by side, filterable by run, variant, the questions' groups (relation,
stratum) and right/wrong (exact match). Deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.schema import mean_of, ordered_variants
from bench.io import atomic_write_text, iter_jsonl
from bench.reporting.html_assets import CSS, JS
from bench.reporting.plots import per_run, vlabel

MAX_ANSWER_CHARS = 240  # an answer longer than this is cut (…) in the page


@dataclass
class HtmlRun:
    title: str
    run_id: str
    scores: dict[str, Any]
    answers: Path | None
    extra: list[tuple[str, str]] = field(default_factory=list)  # (heading, Markdown) sections


@dataclass
class HtmlSet:
    title: str
    plot: Path | None
    runs: list[HtmlRun] = field(default_factory=list)


def _inline(text: str) -> str:
    """One Markdown cell or line: HTML-escaped, then ``**bold**`` and `` `code` ``."""
    s = html.escape(text.replace("\\|", "|").replace("\\*", "\0"), quote=False)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return s.replace("\0", "*")


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def markdown_to_html(md: str) -> str:
    """The Markdown the report's table renderers write (pipe tables, plain lines) as HTML."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("|") and i + 1 < len(lines) and set(lines[i + 1]) <= set("|-: "):
            head, aligns = _cells(line), _cells(lines[i + 1])
            right = [a.endswith(":") for a in aligns]
            ths = "".join(f"<th>{_inline(h)}</th>" for h in head)
            out.append(f'<div class="scroll"><table><thead><tr>{ths}</tr></thead><tbody>')
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                tds = [
                    f"<td{' class=num' if j < len(right) and right[j] else ''}>{_inline(c)}</td>"
                    for j, c in enumerate(_cells(lines[i]))
                ]
                out.append("<tr>" + "".join(tds) + "</tr>")
                i += 1
            out.append("</tbody></table></div>")
            continue
        if line.strip():
            out.append(f"<p>{_inline(line.strip().lstrip('> '))}</p>")
        i += 1
    return "\n".join(out)


def _answer(row: dict[str, Any]) -> list[Any]:
    """``[answer (None on error), EM (1/0/None), F1 or None]`` of one answers.jsonl row."""
    metrics = row.get("metrics") or {}
    em = mean_of(metrics.get("exact_match"))
    f1 = mean_of(metrics.get("f1_qstripped"))
    f1 = f1 if f1 is not None else mean_of(metrics.get("f1"))
    text = None if row.get("error") else " ".join(str(row.get("answer") or "").split())
    if text is not None and len(text) > MAX_ANSWER_CHARS:
        text = text[: MAX_ANSWER_CHARS - 1].rstrip() + "…"
    return [text, None if em is None else round(em), None if f1 is None else round(f1, 3)]


@per_run
def run_payload(
    scores: dict[str, Any], rows: list[dict[str, Any]], run_id: str, title: str
) -> dict[str, Any]:
    """One run's questions (file order) with each variant's answer, EM and F1, for the page's script."""
    questions: dict[str, dict[str, Any]] = {}
    for r in rows:
        qid = str(r.get("question_id"))
        q = questions.setdefault(
            qid,
            {"id": qid, "q": str(r.get("question") or ""), "gold": [str(a) for a in r.get("answers") or []],
             "g": {str(k): str(v) for k, v in (r.get("groups") or {}).items()}, "a": {}},
        )  # fmt: skip
        q["a"][str(r.get("variant"))] = _answer(r)
    variants = ordered_variants({v for q in questions.values() for v in q["a"]})
    groups = sorted({g for q in questions.values() for g in q["g"]})
    return {"id": run_id, "title": title, "variants": variants, "labels": {v: vlabel(v) for v in variants},
            "groups": groups, "questions": list(questions.values())}  # fmt: skip


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _controls() -> str:
    return (
        '<div id="controls"><label>run <select id="f-run"></select></label>'
        '<label>variant <select id="f-variant"></select></label><span id="f-groups"></span>'
        '<label>right/wrong (exact match) <select id="f-correct"><option value="">all</option>'
        '<option value="right">right</option><option value="wrong">wrong</option></select></label>'
        '<span id="answers-count"></span></div>'
    )


def _set_body(s: HtmlSet, render_table: Any) -> list[str]:
    out = [f"<h2>Question set {html.escape(s.title)}</h2>"]
    if s.plot is not None and s.plot.exists():
        out.append(f'<img class="plot" alt="accuracy vs latency" src="{_png_uri(s.plot)}">')
    for r in s.runs:
        out += [f"<h3>{html.escape(r.title)}</h3>", markdown_to_html(render_table(r.scores))]
        for heading, md in r.extra:
            out += [f"<h4>{html.escape(heading)}</h4>", markdown_to_html(md)]
    return out


def render_html(
    sets: list[HtmlSet], output: Path, render_table: Any, plots: Sequence[tuple[str, Path]] = ()
) -> Path:
    """Write the page; ``render_table(scores) -> Markdown`` is REPORT.md's results table."""
    body = [
        "<h1>ptwiki-bench report</h1>",
        "<p>Rendered from the runs' <code>scores.json</code> and <code>answers.jsonl</code>, as REPORT.md. "
        "EM = exact match (1 right, 0 wrong); F1 without the question's words where the run has it.</p>",
    ]
    payload: list[dict[str, Any]] = []
    for s in sets:
        body += _set_body(s, render_table)
        for r in s.runs:
            if r.answers is not None and r.answers.exists():
                rows = [row for row in iter_jsonl(r.answers) if row.get("question_id") is not None]
                payload.append(run_payload(r.scores, rows, r.run_id, f"{s.title} · {r.title}"))
    for title, png in plots:
        if png.exists():
            alt = html.escape(title)
            body += [f"<h2>{alt}</h2>", f'<img class="plot" alt="{alt}" src="{_png_uri(png)}">']
    body += [
        '<h2 id="every-question">Every question, each variant\'s answer</h2>',
        _controls(),
        '<div class="scroll"><table id="answers"><thead></thead><tbody></tbody></table></div>',
    ]
    data = json.dumps({"runs": payload}, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ptwiki-bench report</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + f'\n<script id="answers-data" type="application/json">{data}</script>\n<script>{JS}</script>\n'
        "</body></html>\n"
    )
    atomic_write_text(output, page)
    return output
