"""Render ``results/REPORT.md`` (+ one PNG plot per question set) from run ``scores.json`` files only.

Output is deterministic: the same inputs give byte-identical Markdown and PNGs. ``check`` (the
regression gate) lives in :mod:`bench.check` and is re-exported here for the CLI.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.check import check, dig, generator_field, load_scores, mean_of, ordered_variants, scores_path
from bench.config import REPO_ROOT, BenchError
from bench.io import atomic_write_text
from bench.plots import plot, vlabel

__all__ = ["check", "render", "render_table", "update_readme"]

log = logging.getLogger(__name__)

DASH = "–"
START, END = "<!-- results:start -->", "<!-- results:end -->"
COMPARISON_ORDER = ("rag-base", "ft-base", "ft_rag-base", "ft_rag-rag", "ft_rag-ft", "oracle-rag")
SCORE_COLUMNS = (  # (key in scores.json, header)
    ("exact_match", "EM"),
    ("f1", "F1"),
    ("contains", "containment"),
    ("lang_pt", "PT rate"),
    ("lang_en", "EN rate"),
    ("recall@k", "recall@{k}"),
    ("answer_in_context@k", "answer in ctx@{k}"),
)
RAGAS_COLUMNS = (  # ragas' non-LLM metrics (bench/ragas_metrics.py), when the run computed them
    ("string_similarity", "string similarity"),
    ("rouge_l", "ROUGE-L"),
    ("chrf", "chrF"),
    ("ragas_context_recall", "context recall"),
)
NUMBER_COLUMNS = (  # (key, header, digits)
    ("latency_p50_ms", "p50 ms", 0),
    ("latency_p95_ms", "p95 ms", 0),
    ("tokens_per_s", "tok/s", 1),
    ("peak_rss_mb", "RSS MB", 0),
    ("peak_vram_mb", "VRAM MB", 0),
)


def fmt_num(x: Any, digits: int = 3) -> str:
    v = mean_of(x)
    return DASH if v is None else f"{v:.{digits}f}"


def fmt_metric(value: Any, signed: bool = False) -> str:
    """``{"mean": .412, "ci95": [.35, .47]}`` -> ``0.412 [0.35, 0.47]``; missing -> ``–``."""
    key = "diff" if isinstance(value, dict) and "diff" in value else "mean"
    m = mean_of(value.get(key) if isinstance(value, dict) else value)
    if m is None:
        return DASH
    text = f"{m:+.3f}" if signed else f"{m:.3f}"
    ci = value.get("ci95") if isinstance(value, dict) else None
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(mean_of(c) is not None for c in ci):
        text += f" [{float(ci[0]):.2f}, {float(ci[1]):.2f}]"
    return text


def _cell(text: Any) -> str:
    s = DASH if text is None or text == "" else str(text)
    return s.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]], align: str = "---:") -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "|".join([align] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


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
    return " · ".join(str(x) for x in parts)


def render_table(scores: dict[str, Any]) -> str:
    """The main variant table of one run as Markdown (rows = variants, 95% CIs in brackets)."""
    k = dig(scores, "config.index.k") or "k"
    header = ["variant", *(h.format(k=k) for _, h in SCORE_COLUMNS), *(h for _, h, _ in NUMBER_COLUMNS)]
    rows = []
    variants = scores.get("variants") or {}
    for name in ordered_variants(variants):
        v = variants[name] if isinstance(variants[name], dict) else {}
        row = [vlabel(name), *(fmt_metric(v.get(key)) for key, _ in SCORE_COLUMNS)]
        row += [fmt_num(v.get(key), d) for key, _, d in NUMBER_COLUMNS]
        row.append(f"{v.get('n', DASH)} / {v.get('failed', DASH)}")
        rows.append(row)
    return _table([*header, "n / failed"], rows)


def render_ragas(scores: dict[str, Any]) -> str | None:
    """ragas non-LLM metrics per variant; None when the run did not compute them."""
    variants = scores.get("variants") or {}
    names = [n for n in ordered_variants(variants) if isinstance(variants[n], dict)]
    if not any(variants[n].get(key) for n in names for key, _ in RAGAS_COLUMNS):
        return None
    rows = [[vlabel(n), *(fmt_metric(variants[n].get(key)) for key, _ in RAGAS_COLUMNS)] for n in names]
    return _table(["variant", *(h for _, h in RAGAS_COLUMNS)], rows)


def render_side_by_side(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """One column group per run (labelled run i = device · backend · quantisation · model)."""
    header = ["variant"]
    for i, (label, _) in enumerate(runs):
        header += [f"F1 (run {i + 1}: {label})", f"cont. (run {i + 1})", f"p50 ms (run {i + 1})"]
    names = ordered_variants({n for _, s in runs for n in s.get("variants") or {}})
    rows = []
    for name in names:
        row = [vlabel(name)]
        for _, s in runs:
            v = (s.get("variants") or {}).get(name)
            v = v if isinstance(v, dict) else {}
            row += [
                fmt_metric(v.get("f1")),
                fmt_metric(v.get("contains")),
                fmt_num(v.get("latency_p50_ms"), 0),
            ]
        rows.append(row)
    return _table(header, rows)


def _comparison_label(name: str) -> str:
    a, sep, b = name.partition("-")
    return f"{vlabel(a)} − {vlabel(b)}" if sep else name


def significant(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if isinstance(value.get("significant"), bool):
        return bool(value["significant"])
    ci = value.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(mean_of(c) is not None for c in ci):
        return float(ci[0]) > 0 or float(ci[1]) < 0
    return False


def render_comparisons(scores: dict[str, Any]) -> str:
    """Paired differences; **bold ✔** where the 95% CI excludes zero."""
    comps = scores.get("comparisons") or {}
    if not isinstance(comps, dict) or not comps:
        return "_No paired comparisons in this run._\n"
    names = [c for c in COMPARISON_ORDER if c in comps] + sorted(set(comps) - set(COMPARISON_ORDER))
    k = dig(scores, "config.index.k") or "k"
    metrics = [(key, h.format(k=k)) for key, h in SCORE_COLUMNS]
    present = {m for c in names if isinstance(comps[c], dict) for m in comps[c]}
    metrics = [(key, h) for key, h in metrics if key in present]
    metrics += [(m, m) for m in sorted(present - {key for key, _ in SCORE_COLUMNS})]
    rows = []
    for name in names:
        comp = comps[name] if isinstance(comps[name], dict) else {}
        cells = []
        for key, _ in metrics:
            text = fmt_metric(comp.get(key), signed=True)
            cells.append(f"**{text} ✔**" if text != DASH and significant(comp.get(key)) else text)
        rows.append([_comparison_label(name), *cells])
    return _table(["comparison", *(h for _, h in metrics)], rows)


def shown_path(value: Any) -> str:
    """Paths inside the repository are shown relative to it, so reports do not depend on the checkout."""
    if not value:
        return DASH
    try:
        return Path(value).relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(value)


def _short(x: Any, n: int = 12) -> str:
    return DASH if not x else str(x)[:n]


def finetune_label(scores: dict[str, Any]) -> str | None:
    """``qa, 16 steps × 4, quantization none`` from the config; None when the run has no adapter variant."""
    if not {"ft", "ft_rag"} & set(scores.get("variants") or {}):
        return None
    ft = dig(scores, "config.finetune") or {}
    if not isinstance(ft, dict) or not ft:
        return None
    text = f"{ft.get('train_format', DASH)}, {ft.get('max_steps', DASH)} steps × {ft.get('batch_size', DASH)}"
    return f"{text}, quantization {ft.get('quantization', DASH)}"


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
        ("corpus", corpus),
        (
            "question set",
            f"{shown_path(q.get('path') or dig(scores, 'config.questions'))} ({_short(q.get('sha256'))})",
        ),
        ("questions", f"n={q.get('n', DASH)}, split={dig(scores, 'config.split') or 'all'}"),
        ("config hash", scores.get("config_hash")),
        ("hardware", ", ".join(str(h) for h in hw if h) or None),
        ("python", env.get("python")),
        ("created", scores.get("created")),
    ]
    return _table(["field", "value"], [[k, DASH if v is None else str(v)] for k, v in items], align="---")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "questions"


def _find_runs(run_dirs: Iterable[Path]) -> list[Path]:
    dirs = list(run_dirs)
    if not dirs:
        found = sorted((REPO_ROOT / "results" / "runs").glob("*/scores.json"))
        if not found:
            raise BenchError("no results/runs/*/scores.json found: run `python -m bench run` first")
        return found
    return [scores_path(Path(d)) for d in dirs]


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:
        return str(path)


def render(run_dirs: list[Path], output: Path | None = None) -> Path:
    """Render the Markdown report (and plots beside it) from the runs' scores.json; return its path."""
    output = Path(output) if output else REPO_ROOT / "results" / "REPORT.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    loaded = [(p, load_scores(p)) for p in _find_runs(run_dirs)]
    groups: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]] = {}
    for p, s in loaded:
        qpath = shown_path(dig(s, "datasets.questions.path") or dig(s, "config.questions") or "unknown")
        groups.setdefault((qpath, str(dig(s, "datasets.questions.sha256") or "")), []).append((p, s))
    out = ["# ptwiki-bench report", ""]
    out.append(
        "Generated from `scores.json` files only. Scores are means with 95% bootstrap CIs `[lo, hi]`; "
        "rates are fractions of questions. Each run is labelled device · backend · quantisation · model; "
        "runs with different labels are never merged."
    )
    for (qpath, sha), members in sorted(groups.items()):
        members.sort(key=lambda m: (run_label(m[1]), str(m[1].get("run_id") or ""), str(m[0])))
        out += ["", f"## Question set `{qpath}`" + (f" ({sha[:12]})" if sha else ""), ""]
        png = output.with_name(f"{output.stem}-{_slug(Path(qpath).stem)}-{(sha or 'nosha')[:8]}.png")
        runs = [(run_label(s), s) for _, s in members]
        if plot(runs, png, f"{qpath}: accuracy vs latency"):
            out += [f"![accuracy vs latency for {qpath}]({png.name})", ""]
        if len(members) > 1:
            out += ["Runs side by side (F1 / containment / p50 ms):", "", render_side_by_side(runs)]
        for i, (p, s) in enumerate(members):
            out += [f"### Run {i + 1}: {run_label(s)} — `{s.get('run_id') or p.parent.name}`", ""]
            out += [render_table(s)]
            if (ragas := render_ragas(s)) is not None:
                out += ["#### ragas non-LLM metrics (inputs normalised first; docs/harness.md)", "", ragas]
            out += ["#### Paired comparisons (**✔** = 95% CI excludes 0)", ""]
            meta = render_metadata(s, _rel(p, output.parent))
            out += [render_comparisons(s), "#### Run metadata", "", meta]
    text = "\n".join(out).rstrip("\n") + "\n"
    atomic_write_text(output, text)
    log.info("wrote %s (%d run(s), %d question set(s))", output, len(loaded), len(groups))
    return output


def update_readme(readme: Path, scores: dict[str, Any]) -> bool:
    """Replace the text between the results markers in ``readme`` with :func:`render_table`."""
    text = Path(readme).read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise BenchError(f"{readme}: markers {START} ... {END} not found")
    new = text[: start + len(START)] + "\n" + render_table(scores) + text[end:]
    if new == text:
        return False
    atomic_write_text(readme, new)
    return True
