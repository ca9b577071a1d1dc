"""The ``scores.json`` schema: typed views (:class:`Scores`, :class:`VariantScores`, :class:`Estimate`) and
the small readers every consumer shares — report, tables, plots, curves, samples and the regression check.

A metric value is an :class:`Estimate` (``{"mean", "ci95", "interval", "n"}``, written by
:mod:`bench.eval.scoring`) or a bare number (latencies, counts); which metrics exist is the ``METRICS``
registry's business (:mod:`bench.eval.scoring`). :func:`load_scores` validates a file against this schema and
names the file and the variant when it does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.io import read_json
from bench.variant_specs import ORDER

VARIANT_ORDER = ORDER  # bench.variant_specs: the one report order
# single_latency_ms["when"] of a probe run before its variant's batch (bench.eval.runner); a probe without it
# ran after the batch, when vLLM's prefix cache still held most of its prompts
PROBED_BEFORE = "before the batch"


@dataclass(frozen=True)
class Estimate:
    """A per-variant metric: its mean, 95 % interval (Wilson or bootstrap) and the answers it covers."""

    mean: float | None
    ci95: tuple[float, float] | None = None
    interval: str | None = None
    n: int | None = None

    @classmethod
    def parse(cls, value: Any, where: str) -> Estimate:
        if isinstance(value, bool):
            raise BenchError(f"{where}: a boolean is not a metric value")
        if value is None or isinstance(value, int | float):
            return cls(None if value is None else float(value))
        if not isinstance(value, dict) or "mean" not in value:
            raise BenchError(f"{where}: expected a number or {{'mean', 'ci95', …}}, got {value!r}")
        ci = value.get("ci95")
        if ci is not None and not (isinstance(ci, list | tuple) and len(ci) == 2):
            raise BenchError(f"{where}: ci95 must be [low, high], got {ci!r}")
        try:
            bounds = (float(ci[0]), float(ci[1])) if ci else None
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{where}: ci95 bounds must be numbers, got {ci!r}") from exc
        return cls(mean_of(value), bounds, value.get("interval"), value.get("n"))


@dataclass(frozen=True)
class VariantScores:
    name: str
    n: int | None
    metrics: dict[str, Estimate]

    def mean(self, metric: str) -> float | None:
        est = self.metrics.get(metric)
        return est.mean if est else None


@dataclass(frozen=True)
class Scores:
    """A parsed ``scores.json``; ``raw`` keeps the dict for the fields this view does not type."""

    path: Path
    run_id: str | None
    variants: dict[str, VariantScores]
    artifacts: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, data: Any, path: Path) -> Scores:
        if not isinstance(data, dict) or not isinstance(data.get("variants"), dict):
            raise BenchError(f"{path}: not a scores.json (no 'variants' object)")
        variants = {}
        for name, body in data["variants"].items():
            if not isinstance(body, dict):
                raise BenchError(f"{path}: variant {name!r} is not an object")
            metrics = {
                k: Estimate.parse(v, f"{path}: variant {name!r}, metric {k!r}")
                for k, v in body.items()
                if k != "n"
                and not isinstance(v, str | list)  # labels and lists are not metrics
                and not (isinstance(v, dict) and "mean" not in v)  # nested records (e.g. resources)
            }
            variants[name] = VariantScores(name, body.get("n"), metrics)
        env: dict[str, Any] = data["env"] if isinstance(data.get("env"), dict) else {}
        return cls(
            path,
            data.get("run_id"),
            variants,
            dict(data.get("artifacts") or {}),
            env.get("git_commit"),
            env.get("git_dirty"),
            data,
        )


def as_scores(obj: Scores | dict[str, Any], where: str = "<scores>") -> Scores:
    """The typed view of a scores dict (validated), or the view itself."""
    return obj if isinstance(obj, Scores) else Scores.parse(obj, Path(where))


def scores_path(path: Path) -> Path:
    return path / "scores.json" if path.is_dir() else path


def read_scores(path: Path) -> Scores:
    """The typed view of a ``scores.json`` (or of a run directory holding one); errors name the file."""
    p = scores_path(Path(path))
    return Scores.parse(read_json(p), p)


def load_scores(path: Path) -> dict[str, Any]:
    """A ``scores.json`` (or a run directory holding one) as a dict, validated against :class:`Scores`."""
    return read_scores(path).raw


def dig(obj: Any, dotted: str) -> Any:
    """``dig(d, "a.b")`` is ``d["a"]["b"]``, or None where any step is missing."""
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def mean_of(value: Any) -> float | None:
    """A metric is either ``{"mean": x, "ci95": [..]}`` or a bare number; anything else is missing."""
    if isinstance(value, dict):
        value = value.get("mean")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def ordered_variants(names: Any) -> list[str]:
    names = list(names)
    return [v for v in VARIANT_ORDER if v in names] + sorted(v for v in names if v not in VARIANT_ORDER)


def generator_field(scores: dict[str, Any], name: str) -> str | None:
    """A field of ``env.generator``: flat ``{"quantization": ..}`` or per variant ``{"base": {..}, ..}``.

    Distinct per-variant values are joined with `` / `` (sorted), so the result is stable.
    """
    gen = dig(scores, "env.generator")
    if not isinstance(gen, dict):
        return None
    flat = any(not isinstance(v, dict) for v in gen.values())
    infos = [gen] if flat else [gen[v] for v in ordered_variants(gen)]
    values = sorted({str(i[name]) for i in infos if i.get(name) is not None})
    return " / ".join(values) or None
