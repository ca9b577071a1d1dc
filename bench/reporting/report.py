"""Render ``results/REPORT.md`` (+ one PNG plot per question set) from run ``scores.json`` files only.

Output is deterministic: the same inputs give byte-identical Markdown and PNGs. ``check`` (the
regression gate) lives in :mod:`bench.reporting.check` and is re-exported here for the CLI; the README
blocks live in :mod:`bench.reporting.readme`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.core.schema import dig, generator_field, load_scores, scores_path
from bench.io import answers_file, atomic_write_text
from bench.recipe_keys import recorded_recipe
from bench.reporting.costs import render_costs
from bench.reporting.diagnostics_tables import render_diagnostics
from bench.reporting.html import HtmlRun, HtmlSet, render_html
from bench.reporting.judge_tables import render_judge
from bench.reporting.plots import plot
from bench.reporting.run_tables import render_side_by_side
from bench.reporting.tables import (
    DASH,
    render_baseline_checks,
    render_comparisons,
    render_groups,
    render_ragas,
    render_table,
    table,
)

__all__ = ["render", "render_ragas", "render_table"]

log = logging.getLogger(__name__)


def quantization(scores: dict[str, Any]) -> str:
    q = generator_field(scores, "quantization")
    if q is None and (dig(scores, "env.backend") or dig(scores, "config.model.backend")) == "transformers":
        q = dig(scores, "config.model.dtype")
    return str(q) if q is not None else DASH


def run_label(scores: dict[str, Any]) -> str:
    """``cpu · llamacpp · Q4_K_M · qwen2.5`` (``· batch 4`` when batched) — never mix such runs silently."""
    device = dig(scores, "env.device") or dig(scores, "config.device") or DASH
    backend = dig(scores, "env.backend") or dig(scores, "config.model.backend") or DASH
    model = dig(scores, "config.model.name") or generator_field(scores, "model") or DASH
    parts = [device, backend, quantization(scores), model]
    batch = dig(scores, "config.model.batch_size")
    if isinstance(batch, int) and batch > 1:  # amortised per-question latencies: say so in the label
        parts.append(f"batch {batch}")
    reader = dig(scores, "prompt.reader") or dig(scores, "config.model.reader")
    if reader and reader != "extractive":  # another reader answers differently: never read it as the same
        parts.append(f"reader {reader}")
    return " · ".join(str(x) for x in parts)


def shown_path(value: Any) -> str:
    """Paths under the current directory are shown relative to it: reports do not depend on the checkout."""
    if not value:
        return DASH
    try:
        return Path(value).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(value)


def _short(x: Any, n: int = 12) -> str:
    return DASH if not x else str(x)[:n]


def finetune_label(scores: dict[str, Any]) -> str | None:
    """``mixed, 95 steps trained × 4 (5 epochs), 383/383 evaluated pages trained, quantization none``: the
    steps the training record says were done (``costs.finetune.steps``), not the configured ``max_steps`` (0
    when epochs set the budget); without a record, the configured budget, labelled as such. None when the run
    has no adapter variant."""
    if not {"ft", "ft_rag"} & set(scores.get("variants") or {}):
        return None
    ft = dig(scores, "config.finetune") or {}
    if not isinstance(ft, dict) or not ft:
        return None
    batch, steps = ft.get("batch_size", DASH), dig(scores, "costs.finetune.steps")
    epochs = dig(scores, "costs.finetune.epochs") or ft.get("epochs")
    per = f" ({epochs:g} epochs)" if isinstance(epochs, int | float) and epochs else ""
    if isinstance(steps, int) and not isinstance(steps, bool):
        budget = f"{steps} steps trained × {batch}{per}"
    elif ft.get("max_steps"):
        budget = f"≤ {ft['max_steps']} steps × {batch} (configured max_steps; steps trained not recorded)"
    else:
        budget = f"batch {batch}{per} (steps trained not recorded)"
    recipe = recorded_recipe(ft) or DASH  # results from before the alias was renamed on load too
    cover = dig(scores, "costs.finetune.coverage")
    pages = ""
    if isinstance(cover, dict) and cover.get("evaluated_pages"):
        pages = f", {cover.get('trained_pages')}/{cover.get('evaluated_pages')} evaluated pages trained"
    return f"{recipe}, {budget}{pages}, quantization {ft.get('quantization', DASH)}"


def reader_label(scores: dict[str, Any]) -> str | None:
    """``extractive, 3-shot, stop at newline, ≤ 64 new tokens (prompt 1a2b…)``."""
    p = scores.get("prompt")
    if not isinstance(p, dict):
        return None
    stop = ", stop at newline" if p.get("stop_at_newline") else ""
    shots = f"{p.get('fewshot')}-shot" if p.get("fewshot") else "zero-shot"
    cap = f"≤ {p.get('max_new_tokens')} new tokens"
    return f"{p.get('reader')}, {shots}{stop}, {cap} (prompt {_short(p.get('prompt_id'))})"


def _git_label(env: dict[str, Any]) -> str | None:
    commit = env.get("git_commit")
    if not commit:
        return None
    return f"{str(commit)[:12]}{' (uncommitted changes)' if env.get('git_dirty') else ''}"


def dirty_warning(scores: dict[str, Any]) -> str | None:
    """A visible flag for results produced from a working tree with uncommitted changes."""
    env = scores.get("env") or {}
    if not env.get("git_dirty"):
        return None
    commit = str(env.get("git_commit") or "")[:12] or DASH
    return (
        f"> ⚠ Produced from a working tree with uncommitted changes (git_dirty, on top of {commit}): the "
        "committed code may not reproduce these numbers."
    )


def adopted_label(scores: dict[str, Any]) -> str | None:
    """The variants whose answers a resumed run took from its committed results (bench.eval.adopt): they
    were decoded, and their latency and memory measured, on that run's commit and machine."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, summary in (scores.get("variants") or {}).items():
        for got in summary.get("adopted") or []:
            origin = (str(got.get("git_commit") or DASH)[:12], str(got.get("cpu_model") or DASH))
            groups.setdefault(origin, []).append(f"{name} ({got.get('rows')})")
    return "; ".join(f"{', '.join(v)} from {c} on {cpu}" for (c, cpu), v in groups.items()) or None


def render_metadata(scores: dict[str, Any], source: str) -> str:
    corpora = dig(scores, "datasets.corpus") or []
    corpus = ", ".join(
        f"{shown_path(c.get('path'))} ({_short(c.get('sha256'))})" for c in corpora if isinstance(c, dict)
    ) or str(dig(scores, "config.corpus") or DASH)
    q = dig(scores, "datasets.questions") or {}
    env = scores.get("env") or {}
    hw = [env.get("device"), env.get("cpu_model"), env.get("cores") and f"{env['cores']} cores"]
    hw += [env.get("ram_gb") and f"{env['ram_gb']} GB RAM", env.get("gpu_name")]
    emb = [dig(scores, "config.index.embedder"), dig(scores, "config.index.embedder_model")]
    items = [
        ("run id", scores.get("run_id")),
        ("scores", f"`{source}`"),
        ("model", dig(scores, "config.model.name")),
        ("generator", shown_path(generator_field(scores, "model"))),
        ("backend", dig(scores, "env.backend") or dig(scores, "config.model.backend")),
        ("quantisation", quantization(scores)),
        ("embedder", " / ".join(str(e) for e in emb if e) or None),
        ("retrieval", dig(scores, "config.index.retrieval")),
        ("k", dig(scores, "config.index.k")),
        ("fine-tune", finetune_label(scores)),
        ("reader", reader_label(scores)),
        ("corpus", corpus),
        (
            "question set",
            f"{shown_path(q.get('path') or dig(scores, 'config.questions'))} ({_short(q.get('sha256'))})",
        ),
        ("questions", f"n={q.get('n', DASH)}, split={dig(scores, 'config.split') or 'all'}"),
        ("config hash", scores.get("config_hash")),
        ("hardware", ", ".join(str(h) for h in hw if h) or None),
        ("python", env.get("python")),
        ("git commit", _git_label(env)),
        ("created", scores.get("created")),
    ]
    if adopted := adopted_label(scores):
        items.append(("answers adopted from the committed run", adopted))
    return table(["field", "value"], [[k, DASH if v is None else str(v)] for k, v in items], align="---")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "questions"


def _find_runs(run_dirs: Iterable[Path]) -> list[Path]:
    dirs = list(run_dirs)
    if not dirs:
        found = sorted((Path.cwd() / "results" / "runs").glob("*/scores.json"))
        if not found:
            raise BenchError("no results/runs/*/scores.json found: run `python -m bench run` first")
        return found
    return [scores_path(Path(d)) for d in dirs]


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:
        return str(path)


def html_run(i: int, p: Path, s: dict[str, Any], base: Path) -> HtmlRun:
    """One run of REPORT.html: its title, id (its folder, relative to the report), answers and judge table."""
    title = f"Run {i + 1}: {run_label(s)} — {s.get('run_id') or p.parent.name}"
    judged = render_judge(p.parent)
    return HtmlRun(title, _rel(p.parent, base), s, answers_file(p.parent), [judged] if judged else [])


def _run_section(p: Path, s: dict[str, Any], output: Path, samples: int) -> list[str]:
    """One run's part of REPORT.md under its heading: tables, judge, diagnostics, metadata, answer samples."""
    out: list[str] = []
    if (warning := dirty_warning(s)) is not None:
        out += [warning, ""]
    out += [render_table(s)]
    if (costs := render_costs(s)) is not None:
        out += ["#### What each approach costs (one-off build, per question, accuracy)", "", costs]
    if (ragas := render_ragas(s)) is not None:
        out += ["#### ragas non-LLM metrics (inputs normalised first; docs/harness.md)", "", ragas]
    if (judged := render_judge(p.parent)) is not None:
        out += [f"#### {judged[0]}", "", judged[1]]
    for field, body in render_groups(s):
        out += [f"#### By {field} (EM [95 % Wilson] / containment)", "", body]
    out += render_diagnostics(s)  # attribution, distractors, faithfulness (when present)
    if (checks := render_baseline_checks(s)) is not None:
        out += ["#### Does each model variant beat its no-model baseline?", "", checks]
    out += [
        "#### Paired comparisons (**✔** = significant: exact McNemar p < 0.05 for binary metrics, "
        "95 % bootstrap interval excluding 0 for F1)",
        "",
    ]
    meta = render_metadata(s, _rel(p, output.parent))
    out += [render_comparisons(s), "#### Run metadata", "", meta]
    # --- answer samples hook (bench/reporting/samples.py): only when answers.jsonl sits beside
    # scores.json ---
    if answers_file(p.parent).exists():
        from bench.io import iter_jsonl
        from bench.reporting.samples import render_answer_samples

        rows = list(iter_jsonl(answers_file(p.parent)))
        out += ["#### Answers side by side", "", render_answer_samples(rows, samples, seed=0)]
    # --- end of answer samples hook ---
    return out


def render(
    run_dirs: list[Path], output: Path | None = None, samples: int = 8, sweeps: Iterable[Path] = ()
) -> Path:
    """Render the Markdown report (and plots beside it) from the runs' scores.json; return its path. The
    same runs go to a self-contained REPORT.html beside it (answers.jsonl: every question, filterable).

    ``samples``: questions per run in "Answers side by side" (from the run's answers.jsonl, when present).
    """
    output = Path(output) if output else Path.cwd() / "results" / "REPORT.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    loaded = [(p, load_scores(p)) for p in _find_runs(run_dirs)]
    groups: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]] = {}
    for p, s in loaded:
        # The same question file (by content) is one set wherever the run's checkout was; the configured
        # (repository-relative) path names it.
        qpath = str(dig(s, "config.questions") or shown_path(dig(s, "datasets.questions.path")) or "unknown")
        groups.setdefault((qpath, str(dig(s, "datasets.questions.sha256") or "")), []).append((p, s))
    html_sets: list[HtmlSet] = []  # the same runs, for REPORT.html (bench/reporting/html.py)
    out = ["# ptwiki-bench report", ""]
    out.append(
        "Generated from `scores.json` files only. Rates (EM, containment, truncation, language, recall) are "
        "fractions of questions with 95 % Wilson intervals `[lo, hi]`; F1 scores are means with 95 % "
        "bootstrap intervals. Headline: EM and question-stripped F1 (docs/harness.md). `echo`, "
        "`picker_oracle` and `picker_rag` are no-model baselines: a model variant that does not beat its "
        "baseline is flagged ⚠. Each run is labelled device · backend · quantisation · model; runs with "
        "different labels are never merged."
    )
    for (qpath, sha), members in sorted(groups.items()):
        members.sort(key=lambda m: (run_label(m[1]), str(m[1].get("run_id") or ""), str(m[0])))
        out += ["", f"## Question set `{qpath}`" + (f" ({sha[:12]})" if sha else ""), ""]
        png = output.with_name(f"{output.stem}-{_slug(Path(qpath).stem)}-{(sha or 'nosha')[:8]}.png")
        runs = [(run_label(s), s) for _, s in members]
        plotted = plot(runs, png, f"{qpath}: accuracy vs latency")
        if plotted:
            out += [f"![accuracy vs latency for {qpath}]({png.name})", ""]
        html_sets.append(HtmlSet(f"{qpath}" + (f" ({sha[:12]})" if sha else ""), png if plotted else None))
        if len(members) > 1:
            out += ["Runs side by side (EM / question-stripped F1 / p50 ms):", "", render_side_by_side(runs)]
        for i, (p, s) in enumerate(members):
            out += [f"### Run {i + 1}: {run_label(s)} — `{s.get('run_id') or p.parent.name}`", ""]
            html_sets[-1].runs.append(html_run(i, p, s, output.parent))
            out += _run_section(p, s, output, samples)
    curves: list[tuple[str, Path]] = []
    for root in sweeps:
        from bench.reporting.curves import render_section

        png = output.with_name(f"{output.stem}-curve-{_slug(Path(root).name)}.png")
        out += ["", render_section(Path(root), png)]
        curves.append((f"Learning curve: {Path(root).name}", png))
    text = "\n".join(out).rstrip("\n") + "\n"
    atomic_write_text(output, text)
    render_html(html_sets, output.with_suffix(".html"), render_table, curves)
    log.info("wrote %s (%d run(s), %d question set(s))", output, len(loaded), len(groups))
    return output
