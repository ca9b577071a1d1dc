"""The report's "Answers side by side" section, rendered from a run's ``answers.jsonl`` rows.

N questions are chosen deterministically: half where the variants' scores differ most (ties by question id),
the rest drawn at random with a fixed seed from the others. Each gets the gold answer(s) and every variant's
answer (cut to ``MAX_CHARS``), its scores and its detected language. A short list of answers detected as
another language than Portuguese follows. Rows may lack metric keys: missing ones show as ``–``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

from bench.core.schema import mean_of, ordered_variants

DASH = "–"
MAX_CHARS = 120
MAX_NON_PT = 15


def clip(text: Any, limit: int = MAX_CHARS) -> str:
    """One line of at most ``limit`` characters, with ``…`` where it was cut."""
    s = " ".join(str(text or "").split())
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def _cell(text: Any) -> str:
    s = DASH if text is None or text == "" else str(text)
    return s.replace("|", "\\|").replace("\n", " ")


def f1_key(rows: Iterable[dict[str, Any]]) -> str:
    """``f1_qstripped`` when any row has it (token F1 without the question's own words), else ``f1``."""
    has = any(mean_of((r.get("metrics") or {}).get("f1_qstripped")) is not None for r in rows)
    return "f1_qstripped" if has else "f1"


def _score(row: dict[str, Any], key: str) -> float | None:
    return mean_of((row.get("metrics") or {}).get(key))


def _by_question(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r.get("question_id")), {})[str(r.get("variant"))] = r
    return out


def _spread(variants: dict[str, dict[str, Any]], key: str) -> float:
    """How much the variants disagree on one question: the range of their scores (0 when < 2 scores)."""
    scores = [s for s in (_score(r, key) for r in variants.values()) if s is not None]
    return max(scores) - min(scores) if len(scores) > 1 else 0.0


def _choose(rows: list[dict[str, Any]], n: int, seed: int) -> tuple[list[str], list[str]]:
    grouped = _by_question(rows)
    key = f1_key(rows)
    ids = sorted(grouped)
    by_spread = sorted(ids, key=lambda q: (-_spread(grouped[q], key), q))
    top = [q for q in by_spread[: math.ceil(n / 2)] if _spread(grouped[q], key) > 0]
    rest = [q for q in ids if q not in top]
    return top, random.Random(seed).sample(rest, min(len(rest), max(0, n - len(top))))


def choose_questions(rows: list[dict[str, Any]], n: int = 8, seed: int = 0) -> list[str]:
    """Question ids: up to ``ceil(n/2)`` where the variants' scores differ most (a spread > 0), then random
    ones (``seed``) up to ``n``, in that order."""
    top, picked = _choose(rows, n, seed)
    return top + picked


def _lang_cell(lang: Any) -> str:
    if lang in (None, ""):
        return DASH
    return str(lang) if lang in ("pt", "und") else f"**{lang}** ⚠"


def _num(value: float | None, digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def render_table(rows: list[dict[str, Any]], n: int = 8, seed: int = 0) -> str:
    grouped = _by_question(rows)
    key = f1_key(rows)
    f1_head = "F1 (q-stripped)" if key == "f1_qstripped" else "F1"
    top, picked = _choose(rows, n, seed)
    lines = [
        f"{len(top) + len(picked)} of {len(grouped)} questions: {len(top)} where the variants' {f1_head} "
        f"differs most, {len(picked)} drawn at random (seed {seed}). Answers cut to {MAX_CHARS} characters; "
        "⚠ = not Portuguese.",
        "",
        f"| question (gold) | variant | answer | EM | {f1_head} | cont. | lang |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for qid in top + picked:
        variants = grouped[qid]
        first = next(iter(variants.values()))
        gold = " / ".join(clip(a, 60) for a in first.get("answers") or []) or DASH
        head = f"`{qid}` {clip(first.get('question'))} (gold: {gold})"
        for i, name in enumerate(ordered_variants(variants)):
            r = variants[name]
            answer = clip(r.get("answer")) or DASH
            if r.get("error"):
                answer = f"_(error: {clip(r['error'], 60)})_"
            cells = [
                head if i == 0 else "",
                name,
                answer,
                _num(_score(r, "exact_match"), 0),
                _num(_score(r, key), 2),
                _num(_score(r, "contains"), 0),
                _lang_cell((r.get("metrics") or {}).get("lang")),
            ]
            lines.append("| " + " | ".join(_cell(c) if c != "" else " " for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_non_portuguese(rows: list[dict[str, Any]], limit: int = MAX_NON_PT) -> str:
    """Bullet list of answers detected as another language than Portuguese ("und" is not counted)."""
    found = [r for r in rows if (r.get("metrics") or {}).get("lang") not in (None, "", "pt", "und")]
    if not found:
        return "No answer was detected as another language than Portuguese.\n"
    order = {v: i for i, v in enumerate(ordered_variants({str(r.get("variant")) for r in found}))}
    found.sort(key=lambda r: (order[str(r.get("variant"))], str(r.get("question_id"))))
    lines = [f"{len(found)} answer(s) detected as another language than Portuguese:", ""]
    for r in found[:limit]:
        lang = r["metrics"]["lang"]
        lines.append(
            f"- {r.get('variant')} · `{r.get('question_id')}` · **{lang}**: {_cell(clip(r.get('answer')))}"
        )
    if len(found) > limit:
        lines.append(f"- … and {len(found) - limit} more")
    return "\n".join(lines) + "\n"


def render_answer_samples(answers_rows: list[dict[str, Any]], n: int = 8, seed: int = 0) -> str:
    """The Markdown body of "Answers side by side": the sample table, then the non-Portuguese answers."""
    rows = [r for r in answers_rows if isinstance(r, dict) and r.get("question_id") is not None]
    if not rows:
        return "_No answers to show._\n"
    return render_table(rows, n, seed) + "\n" + render_non_portuguese(rows)
