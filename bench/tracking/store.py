"""The MLflow side of tracking: where the store is, which experiment, and the one-run-per-content rule.

A :class:`Record` is what one MLflow run holds (params, metrics with steps, tags, artifact files); the
:class:`Tracker` logs it unless a finished run with the same ``bench.content_key`` tag is already in the
experiment, so a rerun that only hit caches logs nothing new. Only the real MLflow client is used.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import TrackingConfig

log = logging.getLogger(__name__)

CONTENT_TAG = "bench.content_key"
MAX_PARAM_CHARS = 500  # MLflow 2.0 servers accept 500 characters per param value, newer ones 6000
BATCH = 100  # params/tags per log_batch request (MLflow's limit), metrics go 1000 at a time
KIND = "custom_model_development"  # the UI opens such an experiment on its training-runs view
_BAD_KEY = re.compile(r"[^\w./\- :]")


def metric_key(name: str) -> str:
    """An MLflow-safe key: ``recall@k`` → ``recall_k`` (letters, digits, ``_ - . / :`` and space only)."""
    return _BAD_KEY.sub("_", name)


@dataclass
class Record:
    """One MLflow run: its name, content key (never logged twice), params, tags, metrics and files."""

    name: str
    content_key: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int]] = field(default_factory=list)  # (key, value, step)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)  # (file, folder in the run)


def tracking_uri(tc: TrackingConfig, results: Path) -> str:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite file under the results directory."""
    if tc.uri:
        return tc.uri
    if env := os.environ.get("MLFLOW_TRACKING_URI"):
        return env
    return f"sqlite:///{(results / 'mlflow.db').resolve()}"


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store live beside its file (``mlartifacts/<experiment>``); MLflow's own default
    would be ``./mlruns`` under whatever directory the command ran in. A server decides for itself (None)."""
    db = _sqlite_file(uri)
    if db is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", experiment).strip("-") or "default"
    return (db.resolve().parent / "mlartifacts" / slug).as_uri()


class Tracker:
    """The MLflow client for one tracking URI (with a deadline on every request to a server)."""

    def __init__(self, tc: TrackingConfig, results: Path) -> None:
        # a server that does not answer fails within ~3 timeouts (2 retries, 1 s then 2 s apart), never hangs
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, round(tc.timeout_s)))
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "2"
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        from mlflow import MlflowClient

        self.uri = tracking_uri(tc, results)
        if (db := _sqlite_file(self.uri)) is not None:
            db.resolve().parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.with_artifacts = tc.artifacts

    def experiment_id(self, name: str) -> str:
        """The experiment called ``name`` (created, or restored when it was deleted)."""
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            where = artifact_location(self.uri, name)
            return str(self.client.create_experiment(name, where, tags={"mlflow.experimentKind": KIND}))
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)

    def logged(self, experiment_id: str, content_key: str) -> str | None:
        """The finished run holding ``content_key``, if any; runs a failed or interrupted logging left with
        that key are deleted (their content is logged again)."""
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{CONTENT_TAG}` = '{content_key}'", max_results=50
        )
        done = [r.info.run_id for r in runs if r.info.status == "FINISHED"]
        for r in runs:
            if r.info.status in ("FAILED", "KILLED"):
                self.client.delete_run(r.info.run_id)
        return done[0] if done else None

    def log(self, experiment: str, record: Record) -> str | None:
        """Log ``record`` as a new run of ``experiment``; None (nothing logged) when it is already there."""
        exp_id = self.experiment_id(experiment)
        if (existing := self.logged(exp_id, record.content_key)) is not None:
            log.info("tracking: %s is already logged (MLflow run %s); nothing new", record.name, existing)
            return None
        run = self.client.create_run(
            exp_id, run_name=record.name, tags={**record.tags, CONTENT_TAG: record.content_key}
        )
        run_id, status = run.info.run_id, "FAILED"
        try:
            self._fill(run_id, record)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self.client.set_terminated(run_id, status)
        log.info(
            "tracking: logged %s as MLflow run %s (%s, experiment %r)",
            record.name,
            run_id,
            self.uri,
            experiment,
        )
        return str(run_id)

    def _fill(self, run_id: str, record: Record) -> None:
        from mlflow.entities import Metric, Param

        params = [Param(k, v[:MAX_PARAM_CHARS]) for k, v in sorted(record.params.items())]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(run_id, params=params[i : i + BATCH])
        stamp = _now_ms()
        metrics = [Metric(metric_key(k), float(v), stamp, step) for k, v, step in record.metrics]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])
        if self.with_artifacts:
            for path, folder in record.artifacts:
                if path.is_file():
                    self.client.log_artifact(run_id, str(path), folder)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def runs_of(tracker: Tracker, experiment: str) -> list[Any]:
    """Every active run of ``experiment`` (newest first); [] when there is no such experiment."""
    exp = tracker.client.get_experiment_by_name(experiment)
    return [] if exp is None else list(tracker.client.search_runs([exp.experiment_id], max_results=1000))
