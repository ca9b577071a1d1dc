"""Markdown tables rendered from ``scores.json`` dicts: variants, ragas metrics, paired comparisons, the
no-model baseline check, the smallest detectable effects, runs side by side, and the reader before/after."""

from __future__ import annotations

import statistics
from typing import Any

from bench.core.schema import PROBED_BEFORE, Estimate, Scores, as_scores, dig, mean_of, ordered_variants
from bench.eval.scoring import BASELINE_OF, METRICS, RAGAS_METRICS
from bench.reporting.plots import per_run, vlabel

DASH = "–"
COMPARISON_ORDER = (
    "rag-base", "ft-base", "ft_rag-base", "ft_rag-rag", "ft_rag-ft", "oracle-rag",
    "base-echo", "ft-echo", "rag-picker_rag", "rag-span_rag", "ft_rag-picker_rag", "ft_rag-span_rag",
    "oracle-picker_oracle", "oracle-span_oracle",
)  # fmt: skip
SCORE_COLUMNS = (  # main table: (metric, with interval?)
    ("exact_match", True),
    ("f1_qstripped", True),
    ("f1", True),
    ("contains", True),
    ("truncated", True),
    ("lang_pt", False),
    ("lang_en", False),
    ("lang_other", False),
    ("lang_und", False),
    ("recall@k", True),
    ("answer_in_context@k", True),
)
LATENCY_COLUMNS = (("p50", "latency_p50_ms", "p50 ms"), ("p95", "latency_p95_ms", "p95 ms"))
NUMBER_COLUMNS = (  # (key, header, digits)
    ("tokens_per_s", "tok/s", 1),
    ("peak_rss_mb", "RSS MB", 0),
    ("engine_peak_rss_mb", "engine RSS MB", 0),
    ("peak_vram_mb", "VRAM MB", 0),
)


def fmt_num(x: Any, digits: int = 3) -> str:
    v = mean_of(x)
    return DASH if v is None else f"{v:.{digits}f}"


def fmt_metric(value: Any, signed: bool = False, interval: bool = True) -> str:
    """``{"mean": .412, "ci95": [.35, .47]}`` (or its :class:`Estimate`) -> ``0.412 [0.35, 0.47]``;
    missing -> ``–``."""
    if isinstance(value, Estimate):
        value = {"mean": value.mean, "ci95": list(value.ci95) if value.ci95 else None}
    key = "diff" if isinstance(value, dict) and "diff" in value else "mean"
    m = mean_of(value.get(key) if isinstance(value, dict) else value)
    if m is None:
        return DASH
    text = f"{m:+.3f}" if signed else f"{m:.3f}"
    ci = value.get("ci95") if isinstance(value, dict) else None
    if interval and isinstance(ci, list | tuple) and len(ci) == 2 and all(mean_of(c) is not None for c in ci):
        text += f" [{float(ci[0]):.2f}, {float(ci[1]):.2f}]"
    return text


def _cell(text: Any) -> str:
    s = DASH if text is None or text == "" else str(text)
    return s.replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[str]], align: str = "---:") -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "|".join([align] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def metric_label(metric: str, k: Any) -> str:
    return METRICS[metric].label.format(k=k) if metric in METRICS else metric


@per_run
def baseline_flag(scores: dict[str, Any], variant: str) -> str:
    """``⚠ loses to span_rag`` when a model variant does not beat its strongest no-model baseline on EM and
    q-stripped F1 (``⚠ not > …`` when it only ties)."""
    check = dig(scores, f"baseline_checks.{variant}")
    if not isinstance(check, dict):
        return DASH if variant in BASELINE_OF else ""
    if check.get("beats"):
        return f"> {check.get('baseline')}" + (" ✔" if check.get("significant") else " (n.s.)")
    if check.get("loses_to"):
        return f"⚠ loses to {', '.join(check['loses_to'])}"
    return f"⚠ not > {check.get('baseline')}"


def _score_cell(value: Any, metric: str, interval: bool) -> str:
    """A metric cell; the PT rate also says over how many answers: only answers long enough to classify
    have a language (the undetermined share is the next-but-two column)."""
    cell = fmt_metric(value, interval=interval)
    n = value.get("n") if isinstance(value, dict) else getattr(value, "n", None)
    return f"{cell} (n {n})" if metric == "lang_pt" and n is not None and cell != DASH else cell


@per_run
def render_table(scores: Scores | dict[str, Any]) -> str:
    """The main variant table of one run (rows = variants; rates with Wilson, means with bootstrap CIs)."""
    view = as_scores(scores)
    k = dig(view.raw, "config.index.k") or "k"
    header = ["variant", *(metric_label(m, k) for m, _ in SCORE_COLUMNS), *(h for _, _, h in LATENCY_COLUMNS)]
    header += ["q/s (batch)", *(h for _, h, _ in NUMBER_COLUMNS)]
    rows, kinds = [], set()
    for name in ordered_variants(view.variants):
        v = view.variants[name]
        row = [vlabel(name), *(_score_cell(v.metrics.get(m), m, ci) for m, ci in SCORE_COLUMNS)]
        raw = (view.raw.get("variants") or {}).get(name) or {}
        cells, kind = _latency_cells(raw, v)
        kinds.add(kind)
        row += [*cells, _throughput_cell(raw)]
        row += [fmt_num(v.mean(key), d) for key, _, d in NUMBER_COLUMNS]
        failed = v.mean("failed")
        row += [f"{DASH if v.n is None else v.n} / {DASH if failed is None else int(failed)}"]
        row.append(baseline_flag(view.raw, name))
        rows.append(row)
    out = table([*header, "n / failed", "vs no-model baseline"], rows)
    notes = []
    if "amortised" in kinds:
        notes.append(
            "\\* no per-question probe for this variant (its answers came from a cache, or the run "
            "predates `run.latency_probe`): each question's time inside its batch — with vLLM its request "
            "time, the whole batch in flight; before, batch wall time / batch size."
        )
    if "after" in kinds:
        notes.append(
            "† questions answered one at a time after the batch (runs before the probe moved ahead of it): "
            "with vLLM their prompts were mostly still in its prefix cache, so mostly decoding."
        )
    if "before" in kinds and notes:
        notes.append("Other latencies: questions new to the engine, one at a time before the batch.")
    return out + ("\n" + " ".join(notes) + "\n" if notes else "")


def _latency_cells(raw: dict[str, Any], v: Any) -> tuple[list[str], str | None]:
    """p50/p95 ms and how they were measured: one question at a time before the batch (``"before"``), or
    after it in older runs (``"after"``, marked †: vLLM's prefix cache still held the prompts), else the
    batch-amortised figure (``"amortised"``, marked ``*``); no-model rows keep their plain figure (None)."""
    single = raw.get("single_latency_ms")
    if isinstance(single, dict):
        kind = "before" if single.get("when") == PROBED_BEFORE else "after"
        mark = "†" if kind == "after" else ""
        return [f"{fmt_num(single.get(p), 0)}{mark}" for p, _, _ in LATENCY_COLUMNS], kind
    cells = [fmt_num(v.mean(key), 0) for _, key, _ in LATENCY_COLUMNS]
    if raw.get("tokens_per_s") is not None and any(c != DASH for c in cells):
        return [f"{c}*" for c in cells], "amortised"
    return cells, None


def _throughput_cell(raw: dict[str, Any]) -> str:
    t = raw.get("throughput")
    if not isinstance(t, dict) or t.get("questions_per_s") is None:
        return DASH
    return f"{t['questions_per_s']:.2f} (×{t.get('batch')})"


@per_run
def render_ragas(scores: dict[str, Any]) -> str | None:
    """ragas non-LLM metrics per variant; None when the run did not compute them."""
    variants = scores.get("variants") or {}
    names = [n for n in ordered_variants(variants) if isinstance(variants[n], dict)]
    if not any(variants[n].get(key) for n in names for key in RAGAS_METRICS):
        return None
    rows = [[vlabel(n), *(fmt_metric(variants[n].get(key)) for key in RAGAS_METRICS)] for n in names]
    return table(["variant", *(metric_label(m, "k") for m in RAGAS_METRICS)], rows)


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


def _comparison_names(comps: dict[str, Any]) -> list[str]:
    return [c for c in COMPARISON_ORDER if c in comps] + sorted(set(comps) - set(COMPARISON_ORDER))


def _compared_metrics(comps: dict[str, Any]) -> list[str]:
    present = {m for c in comps.values() if isinstance(c, dict) for m in c}
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


@per_run
def render_comparisons(scores: dict[str, Any]) -> str:
    """Paired differences; **bold ✔** where significant (exact McNemar p for binary metrics, with p shown;
    the bootstrap interval excluding 0 otherwise), then the smallest detectable effects."""
    comps = scores.get("comparisons") or {}
    if not isinstance(comps, dict) or not comps:
        return "_No paired comparisons in this run._\n"
    k = dig(scores, "config.index.k") or "k"
    metrics = _compared_metrics(comps)
    rows = []
    for name in _comparison_names(comps):
        comp = comps[name] if isinstance(comps[name], dict) else {}
        cells = []
        for key in metrics:
            value = comp.get(key)
            text = fmt_metric(value, signed=True)
            if text != DASH and isinstance(value, dict) and value.get("p_value") is not None:
                text += f" p={float(value['p_value']):.3f}"
            cells.append(f"**{text} ✔**" if text != DASH and significant(value) else text)
        rows.append([_comparison_label(name), *cells])
    out = table(["comparison (a − b)", *(metric_label(m, k) for m in metrics)], rows)
    return out + "\n" + render_detectable(scores, metrics)


def render_detectable(scores: dict[str, Any], metrics: list[str]) -> str:
    """One line: the median over comparisons of the smallest detectable difference at this n."""
    comps = scores.get("comparisons") or {}
    parts = []
    n = None
    for key in metrics:
        mdes = [
            c[key]["mde"] for c in comps.values() if isinstance(c, dict) and (c.get(key) or {}).get("mde")
        ]
        n = n or next((c[key].get("n") for c in comps.values() if isinstance(c, dict) and c.get(key)), None)
        if mdes:
            parts.append(f"{metric_label(key, 'k')} ±{statistics.median(mdes):.3f}")
    if not parts:
        return ""
    return (
        f"Smallest detectable difference at n = {n} (80 % power, two-sided α = 0.05; median over the "
        f"comparisons above, from the spread of their paired differences): {', '.join(parts)}.\n"
    )


def _verdict(c: dict[str, Any]) -> str:
    if c.get("beats"):
        return "yes ✔" if c.get("significant") else "yes, not significant"
    strongest = c["strongest"] if isinstance(c.get("strongest"), dict) else {}
    lost = [
        f"{vlabel(str(strongest.get(m) or c.get('baseline')))} on {metric_label(m, 'k')}"
        for m in ("exact_match", "f1_qstripped")
        if (d := mean_of(c.get(m))) is not None and d < 0
    ]
    if lost:
        return f"**no ⚠ — the LLM reader loses to {'; '.join(lost)}**"
    return "**no ⚠ (ties)**"


@per_run
def render_baseline_checks(scores: dict[str, Any]) -> str | None:
    """Does each model variant beat the strongest no-model baseline on the same passages, on EM and on
    question-stripped F1? Each difference is against the baseline that is strongest on that metric."""
    checks = scores.get("baseline_checks") or {}
    if not isinstance(checks, dict) or not checks:
        return None
    rows = []
    for name in ordered_variants(checks):
        c = checks[name] if isinstance(checks[name], dict) else {}
        strongest = c["strongest"] if isinstance(c.get("strongest"), dict) else {}
        cells = []
        for metric in ("exact_match", "f1_qstripped"):
            base = strongest.get(metric) or c.get("baseline")
            cells += [vlabel(str(base)) if base else DASH, fmt_num(c.get(metric))]
        rows.append([vlabel(name), *cells, _verdict(c)])
    header = [
        "model variant",
        "strongest baseline (EM)",
        "Δ EM",
        "strongest baseline (F1-q)",
        "Δ F1 (q-stripped)",
    ]
    return table([*header, "beats it?"], rows)


@per_run
def render_groups(scores: dict[str, Any]) -> list[tuple[str, str]]:
    """One (field, table) per question field the run broke scores down by: rows = field values, columns =
    variants, cells = EM / containment (95 % Wilson intervals in the first column pair only)."""
    out = []
    groups = scores.get("groups") or {}
    for field, values in groups.items() if isinstance(groups, dict) else ():
        variants = ordered_variants({v for per in values.values() for v in per})
        rows = []
        for value, per in values.items():
            n = next((c["exact_match"].get("n") for c in per.values() if c.get("exact_match")), None)
            cells = [f"{fmt_metric(c.get('exact_match'))} / {fmt_num(c.get('contains'), 2)}"
                     for c in (per.get(v) or {} for v in variants)]  # fmt: skip
            rows.append([f"{value} (n={n})", *cells])
        out.append((field, table([field, *(f"{vlabel(v)} EM / cont." for v in variants)], rows)))
    return out
