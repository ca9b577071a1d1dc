"""The three things the CLI tracks once they have finished: a run, an adapter, a sweep (one experiment,
one MLflow run per point). Tracking never fails a command whose results are written: an MLflow error
is a warning that says how to log the results later (rerun the command: every stage is cached)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from bench.config import Config, TrackingConfig
from bench.io import read_json
from bench.tracking.records import finetune_record, report_files, run_record
from bench.tracking.store import Tracker

log = logging.getLogger(__name__)


def _safely(what: str, fn: Callable[[], list[str]]) -> list[str]:
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # MLflow, SQLAlchemy and HTTP errors alike: the results on disk stand
        log.warning(
            "tracking: %s not logged to MLflow (%s: %s); the results are written; rerun the same command "
            "to log them (its stages are cached), or --set tracking.enabled=false",
            what,
            type(exc).__name__,
            exc,
        )
        return []


def track_run(cfg: Config, run_dir: Path) -> list[str]:
    """Log a finished ``bench run`` (into ``tracking.experiment``); the MLflow run ids logged now."""
    if not cfg.tracking.enabled:
        return []

    def go() -> list[str]:
        tracker = Tracker(cfg.tracking, cfg.results_path)
        record = run_record(run_dir)
        with report_files([run_dir]) as files:
            record.artifacts += files
            run_id = tracker.log(cfg.tracking.experiment, record)
        return [run_id] if run_id else []

    return _safely(f"run {run_dir}", go)


def track_finetune(cfg: Config, adapter: Path) -> list[str]:
    """Log a trained adapter (``bench finetune``) with its loss curve and injection probe."""
    if not cfg.tracking.enabled or not (adapter / "train_metadata.json").exists():
        return []

    def go() -> list[str]:
        run_id = Tracker(cfg.tracking, cfg.results_path).log(
            cfg.tracking.experiment, finetune_record(adapter)
        )
        return [run_id] if run_id else []

    return _safely(f"adapter {adapter}", go)


def sweep_experiment(tc: TrackingConfig, name: str) -> str:
    return f"{tc.experiment}/sweep/{name}"


def sweep_points(root: Path) -> list[tuple[str, Path]]:
    """(point name, run directory) of a sweep: sweep.json's points, else every folder with a scores.json
    (``bench rag-sweep`` writes no manifest)."""
    if (root / "sweep.json").exists():
        points = [
            (str(p["name"]), root / str(p["run_dir"])) for p in read_json(root / "sweep.json")["points"]
        ]
    else:
        points = [(p.parent.name, p.parent) for p in sorted(root.glob("*/scores.json"))]
    return [(name, d) for name, d in points if (d / "scores.json").exists()]


def track_sweep(cfg: Config, root: Path) -> list[str]:
    """Log every point of the sweep in ``root`` not logged yet: one experiment, one MLflow run per point,
    each with its own REPORT.md and plots, the sweep's REPORT.md (learning curve) beside them."""
    if not cfg.tracking.enabled:
        return []

    def go() -> list[str]:
        tracker, logged = Tracker(cfg.tracking, cfg.results_path), []
        experiment = sweep_experiment(cfg.tracking, root.name)
        exp_id, points = tracker.experiment_id(experiment), sweep_points(root)
        new = []
        for name, run_dir in points:
            record = run_record(run_dir, kind="sweep-point", name=name)
            record.tags |= {"bench.sweep": root.name, "bench.point": name}
            if tracker.logged(exp_id, record.content_key) is None:
                new.append((record, run_dir))
        if not new:
            log.info("tracking: every point of %s is already logged", root)
            return []
        curve = [root] if (root / "sweep.json").exists() else []
        with report_files([d for _, d in points], curve) as whole:
            for record, run_dir in new:
                with report_files([run_dir]) as files:
                    record.artifacts += files + [(p, "sweep") for p, _ in whole]
                    if (run_id := tracker.log(experiment, record)) is not None:
                        logged.append(run_id)
        return logged

    return _safely(f"sweep {root}", go)
