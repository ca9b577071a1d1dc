"""Regression check: compare a run's ``scores.json`` with a reviewed baseline.

Stable (deterministic on CPU) metrics fail when they regress by more than an absolute tolerance; noisy
metrics (latency, throughput, memory) only warn, unless they get worse by a large factor. Runs that
cannot be compared meaningfully (different question set, model, backend, quantisation, device, k,
retrieval mode or embedder) are refused with :class:`BenchError` (the CLI exits 2). See docs/reports.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.core.schema import (
    Scores,
    VariantScores,
    as_scores,
    dig,
    generator_field,
    ordered_variants,
    read_scores,
)
from bench.eval.scoring import METRICS, NOISY_METRICS
from bench.io import read_json

log = logging.getLogger(__name__)

# Stable (deterministic on CPU) metrics fail on a regression; EM and question-stripped F1 lead them.
STABLE_METRICS = tuple(name for name, m in METRICS.items() if m.stable)
LOWER_IS_BETTER = {name for name, m in METRICS.items() if not m.higher_is_better}
# Keys (dotted paths into scores.json) that must match for a comparison to mean anything.
IDENTITY_KEYS = (
    "datasets.questions.sha256",
    "config.split",
    "config.limit",
    "config.device",
    "config.model.name",
    "config.model.backend",
    "config.model.batch_size",  # batched latencies are amortised, and bf16 padding changes some answers
    "config.index.k",
    "config.index.retrieval",
    "config.index.embedder",
    "config.index.embedder_model",
)
EMBEDDER_KEYS = ("config.index.embedder", "config.index.embedder_model")
HARDWARE_KEYS = ("env.cpu_model", "env.cores", "env.gpu_name")
OK, WARN, FAIL = "✅", "⚠️", "❌"


@dataclass(frozen=True)
class Tolerances:
    """Absolute tolerance for stable means, and slow-down factors for noisy metrics."""

    stable_abs: float = 0.02
    per_metric: dict[str, float] = field(default_factory=dict)  # e.g. {"lang_pt": 0.05}
    # e.g. {"ft": 0.15}: a variant whose answers legitimately vary between runs (CPU training is not
    # bit-reproducible); the larger of the metric's and the variant's tolerance applies
    per_variant: dict[str, float] = field(default_factory=dict)
    noisy_warn_factor: float = 1.25  # worse by more than this: warning
    noisy_fail_factor: float = 3.0  # worse by more than this: failure
    failed_abs: int = 0  # extra failed questions allowed per variant
    latency_floor_ms: float = 50.0  # latencies below this are timer noise (no-model baselines take µs)

    def for_metric(self, metric: str, variant: str = "") -> float:
        return max(self.per_metric.get(metric, self.stable_abs), self.per_variant.get(variant, 0.0))

    @classmethod
    def load(cls, path: Path) -> Tolerances:
        """Read overrides from a JSON object such as ``{"stable_abs": 0.03, "per_metric": {"f1": 0.05}}``."""
        raw = read_json(path)
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(raw, dict) or set(raw) - names:
            raise BenchError(f"{path}: expected an object with keys among {sorted(names)}")
        return cls(**raw)


@dataclass(frozen=True)
class Row:
    metric: str
    variant: str
    baseline: str
    run: str
    delta: str
    status: str
    note: str = ""


@dataclass
class CheckResult:
    rows: list[Row]
    warnings: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if any(r.status == FAIL for r in self.rows) else 0

    def markdown(self) -> str:
        lines = [
            "| metric | variant | baseline | run | delta | status |",
            "|---|---|---:|---:|---:|:---:|",
        ]
        for r in self.rows:
            status = f"{r.status} {r.note}".strip()
            lines.append(f"| {r.metric} | {r.variant} | {r.baseline} | {r.run} | {r.delta} | {status} |")
        n_fail = sum(r.status == FAIL for r in self.rows)
        n_warn = sum(r.status == WARN for r in self.rows)
        summary = f"**{'FAIL' if n_fail else 'OK'}**: {n_fail} regression(s), {n_warn} warning(s)"
        notes = [f"- {WARN} {w}" for w in self.warnings]
        return "\n".join([*lines, "", summary, *(["", *notes] if notes else [])]) + "\n"


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def compatibility(baseline: dict[str, Any], run: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Return (blocking differences, other config differences) between two scores dicts."""
    blocking = []
    sparse = dig(baseline, "config.index.retrieval") == dig(run, "config.index.retrieval") == "sparse"
    for key in IDENTITY_KEYS:
        if sparse and key in EMBEDDER_KEYS:  # a BM25-only index embeds nothing: the embedder is moot
            continue
        a, b = dig(baseline, key), dig(run, key)
        if a is not None and b is not None and a != b:
            blocking.append(f"{key}: {a!r} != {b!r}")
    sha = "datasets.questions.sha256"
    if (dig(baseline, sha) is None or dig(run, sha) is None) and (
        dig(baseline, "config.questions") != dig(run, "config.questions")
    ):  # without checksums, fall back to the configured question file
        blocking.append(
            f"config.questions: {dig(baseline, 'config.questions')!r} != {dig(run, 'config.questions')!r}"
        )
    qa, qb = generator_field(baseline, "quantization"), generator_field(run, "quantization")
    if qa is not None and qb is not None and qa != qb:
        blocking.append(f"env.generator quantization: {qa!r} != {qb!r}")
    other: list[str] = []
    if baseline.get("config_hash") != run.get("config_hash"):
        fa, fb = _flatten(baseline.get("config") or {}), _flatten(run.get("config") or {})
        for key in sorted(set(fa) | set(fb)):
            if fa.get(key) != fb.get(key) and f"config.{key}" not in IDENTITY_KEYS:
                other.append(f"config.{key}: {fa.get(key)!r} -> {fb.get(key)!r}")
    return blocking, other


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _stable_row(metric: str, variant: str, b: float | None, r: float | None, tol: Tolerances) -> Row | None:
    if b is None:
        return None if r is None else Row(metric, variant, "–", _fmt(r), "new", OK)
    if r is None:
        return Row(metric, variant, _fmt(b), "–", "missing", FAIL)
    delta = r - b
    worse = delta if metric in LOWER_IS_BETTER else -delta
    limit = tol.for_metric(metric, variant)
    status = FAIL if worse > limit + 1e-12 else OK
    note = f"(tolerance {limit:g})" if status == FAIL else ""
    return Row(metric, variant, _fmt(b), _fmt(r), f"{delta:+.3f}", status, note)


def _noisy_row(metric: str, variant: str, b: float | None, r: float | None, tol: Tolerances) -> Row | None:
    if b is None or r is None:
        # Hardware-dependent metrics (VRAM on CPU) may legitimately come and go: never a failure.
        return None if b is None and r is None else Row(metric, variant, _fmt(b, 1), _fmt(r, 1), "–", WARN)
    lower_better = NOISY_METRICS[metric]
    if metric.startswith("latency_"):
        b, r = max(b, tol.latency_floor_ms), max(r, tol.latency_floor_ms)
    # factor > 1 means worse; a zero on either side only matches another zero.
    factor = (1.0 if b == r else float("inf")) if b <= 0 or r <= 0 else (r / b if lower_better else b / r)
    if factor > tol.noisy_fail_factor:
        status, note = FAIL, f"(> {tol.noisy_fail_factor:g}× worse)"
    elif factor > tol.noisy_warn_factor:
        status, note = WARN, "(noisy)"
    else:
        status, note = OK, ""
    ratio = f"×{r / b:.2f}" if b > 0 else "–"
    return Row(metric, variant, _fmt(b, 1), _fmt(r, 1), ratio, status, note)


def _count_rows(variant: str, bv: VariantScores, rv: VariantScores, tol: Tolerances) -> list[Row]:
    rows = []
    if isinstance(bv.n, int) and bv.n != rv.n:
        rows.append(Row("n", variant, str(bv.n), str(rv.n), "–", FAIL, "(different number of questions)"))
    bf, rf = bv.mean("failed"), rv.mean("failed")
    if bf is not None:
        if rf is None:
            rows.append(Row("failed", variant, str(int(bf)), "–", "missing", FAIL))
        else:
            status = FAIL if rf - bf > tol.failed_abs else OK
            rows.append(Row("failed", variant, str(int(bf)), str(int(rf)), f"{int(rf - bf):+d}", status))
    return rows


def compare(
    baseline: Scores | dict[str, Any], run: Scores | dict[str, Any], tol: Tolerances | None = None
) -> CheckResult:
    """Compare two runs' scores (typed views, or dicts validated into them). Raises BenchError when they are
    not comparable."""
    base_s, run_s = as_scores(baseline, "<baseline>"), as_scores(run, "<run>")
    tol = tol or Tolerances()
    warnings, tol = _preflight(base_s.raw, run_s.raw, tol)
    rows: list[Row] = []
    for variant in ordered_variants(base_s.variants):
        bv, rv = base_s.variants[variant], run_s.variants.get(variant)
        if rv is None:
            rows.append(Row("(variant)", variant, "present", "missing", "–", FAIL, "(variant missing)"))
            continue
        for metric in STABLE_METRICS:
            if row := _stable_row(metric, variant, bv.mean(metric), rv.mean(metric), tol):
                rows.append(row)
        rows.extend(_count_rows(variant, bv, rv, tol))
        for metric in NOISY_METRICS:
            if row := _noisy_row(metric, variant, bv.mean(metric), rv.mean(metric), tol):
                rows.append(row)
    for variant in ordered_variants(v for v in run_s.variants if v not in base_s.variants):
        warnings.append(f"variant {variant!r} is not in the baseline (not checked)")
    return CheckResult(rows, warnings)


def _preflight(
    baseline: dict[str, Any], run: dict[str, Any], tol: Tolerances
) -> tuple[list[str], Tolerances]:
    """Refuse incomparable runs; the warnings about config and hardware differences, and the tolerances
    that apply (noisy metrics only warn across hardware)."""
    blocking, other = compatibility(baseline, run)
    if blocking:
        raise BenchError("run is not comparable with the baseline (" + "; ".join(blocking) + ")")
    warnings = [f"config differs from the baseline: {d}" for d in other]
    hw = [k for k in HARDWARE_KEYS if dig(baseline, k) != dig(run, k)]
    if hw:
        # Timings from other hardware say nothing about the code: noisy metrics can then only warn.
        tol = dataclasses.replace(tol, noisy_fail_factor=float("inf"))
        warnings.append("hardware differs from the baseline (" + ", ".join(hw) + "): noisy metrics only warn")
    if baseline.get("config_hash") != run.get("config_hash") and not other:
        warnings.append(f"config hash differs: {baseline.get('config_hash')} != {run.get('config_hash')}")
    return warnings, tol


def check(baseline: Path, run_dir: Path, tolerances: Tolerances | None = None) -> int:
    """Print a Markdown diff table of ``run_dir`` against ``baseline``; return 1 on a regression, else 0.

    Tolerances default to :class:`Tolerances`; a ``<baseline stem>.tolerances.json`` next to the baseline
    overrides them (reviewed in git together with the baseline).
    """
    baseline = Path(baseline)
    if tolerances is None:
        sidecar = baseline.with_name(f"{baseline.stem}.tolerances.json")
        tolerances = Tolerances.load(sidecar) if sidecar.exists() else Tolerances()
        log.debug("tolerances: %s", json.dumps(dataclasses.asdict(tolerances), sort_keys=True))
    result = compare(read_scores(baseline), read_scores(Path(run_dir)), tolerances)
    for w in result.warnings:
        log.warning("%s", w)
    print(result.markdown(), end="")
    return result.exit_code
