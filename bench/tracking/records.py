"""What a finished run, adapter or sweep point puts in MLflow, read from the files the stages wrote
(``scores.json``, ``answers.jsonl``, ``cache/resources.json``, ``train_metadata.json``): the config as
params, each variant's scores as metrics (``<variant>/<metric>``), the training loss curve as the metric
``train/loss`` over steps, the artifact keys and git commit as tags, and the files as artifacts.

The content key names what was measured (config hash, upstream artifact keys, each variant's answer key,
the bytes of ``answers.jsonl``); a rerun that hit every cache writes the same files, so it has the same key.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.config import stable_hash
from bench.eval.runstate import git_state
from bench.io import answers_file, read_json, sha256_file
from bench.tracking.store import Record

log = logging.getLogger(__name__)

UNTRACKED_PARAMS = ("tracking",)  # where and whether to log is not a parameter of the run


def flat_params(config: dict[str, Any]) -> dict[str, str]:
    """``{"index": {"k": 3}}`` → ``{"index.k": "3"}`` (lists comma-separated)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if key in UNTRACKED_PARAMS:
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flat_params(value).items()})
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def _numbers(prefix: str, value: Any) -> Iterator[tuple[str, float]]:
    """Numbers of a variant summary: an estimate's mean, plain numbers, nested dicts dotted; no lists."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        yield prefix, float(value)
    elif isinstance(value, dict) and "mean" in value:
        yield from _numbers(prefix, value["mean"])
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(f"{prefix}.{k}", v)


def variant_metrics(scores: dict[str, Any]) -> list[tuple[str, float, int]]:
    out = []
    for variant, summary in (scores.get("variants") or {}).items():
        for metric, value in (summary or {}).items():
            out += [(f"{variant}/{k}", v, 0) for k, v in _numbers(str(metric), value)]
    return out


def loss_metrics(curve: list[dict[str, Any]] | None) -> list[tuple[str, float, int]]:
    """The trainer's logged losses as one metric series (MLflow draws it over ``step``)."""
    return [("train/loss", float(p["loss"]), int(p["step"])) for p in curve or [] if "loss" in p]


def git_tags(env: dict[str, Any]) -> dict[str, str]:
    commit, dirty = env.get("git_commit"), env.get("git_dirty")
    tags = {"bench.git_dirty": str(dirty).lower()} if dirty is not None else {}
    if commit:
        tags |= {"bench.git_commit": str(commit), "mlflow.source.git.commit": str(commit)}
    return tags


def answer_keys(run_dir: Path) -> dict[str, str]:
    """Each variant's answer cache key, as the run recorded it beside its answers (cache/resources.json)."""
    path = run_dir / "cache" / "resources.json"
    resources = read_json(path) if path.exists() else {}
    return {v: str(r["key"]) for v, r in sorted(resources.items()) if isinstance(r, dict) and r.get("key")}


def run_record(run_dir: Path, kind: str = "run", name: str | None = None) -> Record:
    """The record of a finished run directory (``scores.json`` + ``answers.jsonl``)."""
    scores = read_json(run_dir / "scores.json")
    answers = answers_file(run_dir)
    keys = answer_keys(run_dir)
    upstream = {str(k): str(v) for k, v in (scores.get("artifacts") or {}).items()}
    content = {
        "config_hash": scores.get("config_hash"),
        "artifacts": upstream,
        "answer_keys": keys,
        "answers_sha256": sha256_file(answers) if answers.exists() else None,
    }
    tags = {
        "bench.kind": kind,
        "bench.run_id": str(scores.get("run_id") or run_dir.name),
        "bench.run_dir": str(run_dir.resolve()),
        "bench.config_hash": str(scores.get("config_hash")),
        "bench.questions_sha256": str(((scores.get("datasets") or {}).get("questions") or {}).get("sha256")),
        **{f"bench.artifact.{k}": v for k, v in upstream.items()},
        **{f"bench.answer_key.{v}": k for v, k in keys.items()},
        **git_tags(scores.get("env") or {}),
    }
    params = flat_params(scores.get("config") or {})
    metrics = variant_metrics(scores)
    metrics += loss_metrics(((scores.get("costs") or {}).get("finetune") or {}).get("loss_curve"))
    files: list[tuple[Path, str | None]] = [(run_dir / "scores.json", None), (answers, None)]
    return Record(name or run_dir.name, f"run:{stable_hash(content)}", params, tags, metrics, files)


TRAIN_NUMBERS = (
    "steps", "epochs", "train_loss", "eval_loss", "train_time_s", "tokens_seen", "tokens_per_s",
    "peak_rss_mb", "trainable_params",
)  # fmt: skip


def finetune_record(adapter: Path) -> Record:
    """The record of a trained adapter (``train_metadata.json``): the adapter key is its content key."""
    meta = read_json(adapter / "train_metadata.json")
    params = flat_params({k: v for k, v in (meta.get("config") or {}).items() if k != "run"})
    numbers = {k: meta.get(k) for k in TRAIN_NUMBERS}
    probe = {k: v for k, v in (meta.get("probe") or {}).items() if k not in ("before", "after")}
    metrics = [(k, v, 0) for k, v in _numbers("train", numbers)]
    metrics += [(k, v, 0) for k, v in _numbers("probe", probe)]
    metrics += loss_metrics(meta.get("loss_curve"))
    tags = {
        "bench.kind": "finetune",
        "bench.artifact.finetune": adapter.name,
        "bench.adapter_dir": str(adapter.resolve()),
        "bench.recipe": str(meta.get("recipe")),
        **git_tags(git_state()),  # the checkout that logs it (the training records no commit)
    }
    name = f"finetune {meta.get('recipe')} {meta.get('epochs')} ep ({adapter.name})"
    return Record(
        name, f"finetune:{adapter.name}", params, tags, metrics, [(adapter / "train_metadata.json", None)]
    )


@contextmanager
def report_files(
    run_dirs: list[Path], sweeps: list[Path] | None = None
) -> Iterator[list[tuple[Path, str | None]]]:
    """REPORT.md and its plots for ``run_dirs`` (and sweeps' learning curves), rendered into a temporary
    folder by ``bench report`` itself; an empty list when rendering fails (the run is logged anyway)."""
    from bench.reporting.report import render

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        try:
            out = render(run_dirs, Path(tmp) / "REPORT.md", sweeps=sweeps or [])
        except Exception as exc:  # a report is a convenience here: the scores are logged without it
            log.warning("tracking: REPORT.md not rendered (%s); logging without it", exc)
            yield []
            return
        yield [(p, "report") for p in sorted(out.parent.iterdir()) if p.suffix in (".md", ".png")]
