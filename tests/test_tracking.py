"""MLflow tracking against the real MLflow client and a real SQLite store (read back with mlflow.search_runs):
a run, a sweep (one experiment, one MLflow run per point) and an adapter are logged once per content, with
params, per-variant metrics, the loss curve, tags and artifacts; a cached rerun logs nothing new."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import mlflow
import pytest

from bench.__main__ import main
from bench.config import Config, config_hash, config_to_dict, load_config
from bench.eval import runner
from bench.io import atomic_write_json
from bench.tracking.records import flat_params
from bench.tracking.store import Tracker, metric_key, tracking_uri
from bench.tracking.track import sweep_experiment, track_finetune, track_run, track_sweep
from tests.conftest import TINY_PAGES, make_dump
from tests.test_runner import FakeStages

pytestmark = pytest.mark.timeout(240)

LOSSES = [{"step": 5, "loss": 3.1}, {"step": 10, "loss": 2.4}, {"step": 15, "loss": 1.9}]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (its tables take seconds to create); each test its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def make_cfg(tmp: Path, questions: Path, store: str, experiment: str, *extra: str) -> Config:
    corpus = tmp / "tiny.xml"  # the costs record (the adapter's loss curve) needs a corpus file to name
    corpus.write_text(make_dump(TINY_PAGES), encoding="utf-8")
    return load_config(
        "faquad",
        [
            f"questions={questions}", f"results_dir={tmp / 'results'}", f"corpus={corpus}",
            "split=", "run.bootstrap_samples=50", "model.batch_size=1", "run.latency_probe=0",
            "run.ragas_metrics=false", f"tracking.uri={store}", f"tracking.experiment={experiment}", *extra,
        ],
    )  # fmt: skip


def runs(store: str, experiment: str) -> Any:
    mlflow.set_tracking_uri(store)
    return mlflow.search_runs(experiment_names=[experiment], order_by=["attributes.start_time ASC"])


def with_adapter_metadata(fake: FakeStages) -> FakeStages:
    """The fake adapter carries the train_metadata.json a real training writes (the part costs read)."""
    fake.adapter.mkdir(parents=True, exist_ok=True)
    meta = {"steps": 15, "epochs": 2.0, "train_loss": 2.4, "loss_curve": LOSSES, "probe": {}}
    atomic_write_json(fake.adapter / "train_metadata.json", meta)
    return fake


def test_a_run_is_logged_once_with_params_metrics_loss_curve_tags_and_artifacts(
    tmp_path: Path, tiny_questions: Path, store: str
) -> None:
    cfg = make_cfg(tmp_path, tiny_questions, store, "t-run")
    fake = with_adapter_metadata(FakeStages(tmp_path))
    run_dir = runner.run(cfg, stages=fake.stages())
    ids = track_run(cfg, run_dir)
    assert len(ids) == 1
    df = runs(store, "t-run")
    assert list(df["run_id"]) == ids and df["status"][0] == "FINISHED"
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    row = df.iloc[0]
    assert row["params.index.k"] == "3" and row["params.run.variants"] == ",".join(cfg.run.variants)
    assert "params.tracking.uri" not in df.columns  # where to log is not a parameter of the run
    for variant in ("base", "rag", "oracle", "echo"):
        for metric in ("exact_match", "f1_qstripped", "f1", "contains"):
            want = scores["variants"][variant][metric]["mean"]
            assert row[f"metrics.{variant}/{metric}"] == pytest.approx(want), (variant, metric)
    assert row["metrics.rag/recall_k"] == pytest.approx(scores["variants"]["rag"]["recall@k"]["mean"])
    assert row["tags.bench.config_hash"] == config_hash(cfg) == scores["config_hash"]
    assert row["tags.bench.artifact.index"] == scores["artifacts"]["index"]
    assert row["tags.bench.git_commit"] == scores["env"]["git_commit"] == row["tags.mlflow.source.git.commit"]
    resources = json.loads((run_dir / "cache" / "resources.json").read_text(encoding="utf-8"))
    assert row["tags.bench.answer_key.rag"] == resources["rag"]["key"]
    client = mlflow.MlflowClient(store)
    history = client.get_metric_history(ids[0], "train/loss")
    assert [(m.step, m.value) for m in history] == [(p["step"], p["loss"]) for p in LOSSES]
    files = {f.path for f in client.list_artifacts(ids[0])} | {
        f.path for f in client.list_artifacts(ids[0], "report")
    }
    assert {"scores.json", "answers.jsonl", "report/REPORT.md"} <= files
    assert any(p.startswith("report/REPORT-") and p.endswith(".png") for p in files), files
    # a rerun that hits every cache: the same answers, so nothing new is logged
    calls = len(fake.calls)
    assert track_run(cfg, runner.run(cfg, stages=fake.stages())) == [] and len(fake.calls) == calls
    assert len(runs(store, "t-run")) == 1
    # another setting that changes the answers is another MLflow run
    other = make_cfg(tmp_path, tiny_questions, store, "t-run", "index.k=2")
    assert len(track_run(other, runner.run(other, stages=fake.stages()))) == 1
    assert sorted(runs(store, "t-run")["params.index.k"]) == ["2", "3"]


def sweep_points(tmp: Path, questions: Path, store: str, fake: FakeStages) -> Path:
    """A sweep folder as ``bench sweep`` writes it (sweep.json, a run directory per point), run with fakes."""
    root = tmp / "results" / "sweeps" / "lr"
    points = []
    for name, sets in (
        ("reference", ["run.variants=base,rag"]),
        ("k-1", ["index.k=1"]),
        ("k-2", ["index.k=2"]),
    ):
        cfg = make_cfg(tmp, questions, store, "t-sweep", "run.variants=ft,ft_rag", *sets)
        runner.run(cfg, out_dir=root / name, stages=fake.stages())
        points.append({"name": name, "axes": {}, "overrides": sets, "run_dir": name})
    atomic_write_json(root / "sweep.json", {"name": "lr", "profile": "faquad", "axes": {}, "points": points})
    return root


def test_a_sweep_is_one_experiment_with_one_run_per_point(
    tmp_path: Path, tiny_questions: Path, store: str
) -> None:
    fake = with_adapter_metadata(FakeStages(tmp_path))
    root = sweep_points(tmp_path, tiny_questions, store, fake)
    cfg = make_cfg(tmp_path, tiny_questions, store, "t-sweep")
    assert len(track_sweep(cfg, root)) == 3
    df = runs(store, sweep_experiment(cfg.tracking, "lr"))
    assert sorted(df["tags.mlflow.runName"]) == ["k-1", "k-2", "reference"]
    assert set(df["tags.bench.sweep"]) == {"lr"} and set(df["tags.bench.kind"]) == {"sweep-point"}
    by_name = df.set_index("tags.mlflow.runName")
    assert by_name.loc["k-1", "params.index.k"] == "1" and by_name.loc["k-2", "params.index.k"] == "2"
    assert by_name.loc["reference", "params.run.variants"] == "base,rag"
    assert not pd_isna(by_name.loc["k-1", "metrics.ft_rag/exact_match"])
    assert pd_isna(by_name.loc["reference", "metrics.ft_rag/exact_match"])  # the reference runs base/RAG
    client = mlflow.MlflowClient(store)
    curve = {f.path for f in client.list_artifacts(str(by_name.loc["k-1", "run_id"]), "sweep")}
    assert "sweep/REPORT.md" in curve and "sweep/REPORT-curve-lr.png" in curve, curve
    assert track_sweep(cfg, root) == [] and len(runs(store, sweep_experiment(cfg.tracking, "lr"))) == 3


def pd_isna(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_an_adapter_is_logged_once_with_its_loss_curve(tmp_path: Path, store: str) -> None:
    cfg = load_config("faquad", [f"tracking.uri={store}", "tracking.experiment=t-ft"])
    adapter = tmp_path / "finetune" / "0123abcd"
    adapter.mkdir(parents=True)
    probe = {"ppl_trained_before": 40.0, "ppl_trained_after": 30.0}
    meta = {"config": config_to_dict(cfg), "recipe": "mixed", "epochs": 2.0, "steps": 15, "train_loss": 2.4,
            "loss_curve": LOSSES, "probe": probe}  # fmt: skip
    atomic_write_json(adapter / "train_metadata.json", meta)
    ids = track_finetune(cfg, adapter)
    assert len(ids) == 1
    row = runs(store, "t-ft").iloc[0]
    assert row["tags.bench.artifact.finetune"] == "0123abcd" and row["tags.bench.kind"] == "finetune"
    assert row["params.finetune.recipe"] == cfg.finetune.recipe and row["metrics.train.steps"] == 15
    assert row["metrics.probe.ppl_trained_after"] == 30.0
    history = mlflow.MlflowClient(store).get_metric_history(ids[0], "train/loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [p["loss"] for p in LOSSES]
    assert track_finetune(cfg, adapter) == [] and len(runs(store, "t-ft")) == 1


def test_bench_run_on_the_command_line_logs_and_a_cached_rerun_does_not(
    tmp_path: Path, tiny_questions: Path, tiny_dump: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real CLI path (no fakes: no-model variants only, so nothing loads a model or an index)."""
    sets = [f"questions={tiny_questions}", f"corpus={tiny_dump}", f"results_dir={tmp_path / 'results'}",
            "split=", "run.variants=echo,picker_oracle,span_oracle", "run.bootstrap_samples=50",
            f"tracking.uri={store}", "tracking.experiment=t-cli"]  # fmt: skip
    argv = [
        "run",
        "--profile",
        "faquad",
        "-o",
        str(tmp_path / "run"),
        *(x for s in sets for x in ("--set", s)),
    ]
    assert main(argv) == 0 and main(argv) == 0
    df = runs(store, "t-cli")
    assert len(df) == 1 and df["params.run.variants"][0] == "echo,picker_oracle,span_oracle"
    assert df["metrics.echo/exact_match"][0] == 0.0  # the question itself is never the answer here
    assert "metrics.span_oracle/exact_match" in df.columns
    off = tmp_path / "off"
    argv_off = [*argv[:4], str(off), *argv[5:], "--set", "tracking.enabled=false",
                "--set", f"tracking.uri=sqlite:///{off / 'mlflow.db'}"]  # fmt: skip
    assert main(argv_off) == 0 and (off / "scores.json").exists() and not (off / "mlflow.db").exists()


def test_an_unreachable_server_is_a_warning_not_a_failure(
    tmp_path: Path, tiny_questions: Path, store: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeStages(tmp_path)
    cfg = make_cfg(tmp_path, tiny_questions, store, "t-down", "run.variants=echo")
    run_dir = runner.run(cfg, stages=fake.stages())
    down = load_config("faquad", [f"results_dir={tmp_path / 'results'}", "tracking.uri=http://127.0.0.1:9",
                                  "tracking.timeout_s=1"])  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert track_run(down, run_dir) == []
    assert "not logged to MLflow" in caplog.text and "rerun the same command" in caplog.text


def test_store_location_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config("smoke", [f"results_dir={tmp_path}"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(cfg.tracking, cfg.results_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri(cfg.tracking, cfg.results_path) == "http://mlflow.example:5000"
    explicit = load_config("smoke", ["tracking.uri=sqlite:///x.db"])
    assert tracking_uri(explicit.tracking, cfg.results_path) == "sqlite:///x.db"
    assert metric_key("rag/recall@k") == "rag/recall_k" and metric_key("a.b c-d:e/f_g") == "a.b c-d:e/f_g"
    assert flat_params({"run": {"variants": ["a", "b"]}, "k": 1, "tracking": {"uri": "x"}}) == {
        "run.variants": "a,b",
        "k": "1",
    }
    # the tracking settings never change a run's hash (its default run id, the baseline check)
    assert config_hash(cfg) == config_hash(
        load_config("smoke", [f"results_dir={tmp_path}", "tracking.uri=y"])
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    tracker = Tracker(cfg.tracking, cfg.results_path)
    exp = tracker.client.get_experiment(tracker.experiment_id("x/sweep/y"))
    assert exp.artifact_location == (tmp_path / "mlartifacts" / "x-sweep-y").as_uri()


def test_bench_finetune_logs_the_trainers_loss_curve_once(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, store: str
) -> None:
    """The real CLI and trainer: the MLflow series train/loss is the trainer's logged losses (8 steps)."""
    sets = [f"model.name={tiny_model_dir}", f"corpus={tiny_dump}", f"results_dir={tmp_path / 'results'}",
            "min_text_chars=10", "finetune.max_length=64", "finetune.batch_size=2", "max_steps=8",
            "logging_steps=1", "save_steps=4", "learning_rate=0.005", "warmup_steps=0", "lora_r=8",
            "val_fraction=0", "finetune.scope=corpus", "finetune.epochs=0", "finetune.bf16=false",
            "finetune.probe=false", f"tracking.uri={store}", "tracking.experiment=t-ft-cli"]  # fmt: skip
    argv = ["finetune", "--profile", "faquad", *(x for s in sets for x in ("--set", s))]
    assert main(argv) == 0
    (adapter,) = [
        p for p in (tmp_path / "results" / "finetune").iterdir() if (p / "train_metadata.json").exists()
    ]
    meta = json.loads((adapter / "train_metadata.json").read_text(encoding="utf-8"))
    df = runs(store, "t-ft-cli")
    assert len(df) == 1 and df["tags.bench.artifact.finetune"][0] == adapter.name
    history = mlflow.MlflowClient(store).get_metric_history(str(df["run_id"][0]), "train/loss")
    got = [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)]
    assert got == [(p["step"], p["loss"]) for p in meta["loss_curve"]] and len(got) == 8
    assert main(argv) == 0 and len(runs(store, "t-ft-cli")) == 1  # the adapter is cached: nothing new
