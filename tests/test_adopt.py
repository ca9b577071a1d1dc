"""A committed run resumes on a fresh clone: committed answers of unchanged variants are adopted, not
answered again (bench.eval.adopt)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from test_runner import FakeStages, make_cfg, read_answers

from bench.eval import adopt, runner
from bench.eval.answers import answer_row
from bench.eval.runstate import question_hash
from bench.eval.stages import Stages
from bench.eval.variants import get_spec
from bench.questions.load import load_questions
from bench.reporting import report


def _scores(run_dir: Path) -> dict:
    return json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))


def test_an_answers_row_gives_back_the_cache_row_it_was_rendered_from(
    tmp_path: Path, tiny_questions: Path
) -> None:
    cfg = make_cfg(tmp_path, tiny_questions)
    run_dir = runner.run(cfg, stages=FakeStages(tmp_path).stages())
    questions = {q["id"]: q for q in load_questions(cfg)}
    rows = read_answers(run_dir)
    assert {r["variant"] for r in rows} >= {"base", "rag", "ft_rag", "oracle", "prior", "span_rag"}
    for row in rows:
        spec, q = get_spec(row["variant"]), questions[row["question_id"]]
        again = answer_row(
            spec, q, adopt.cache_row("k", question_hash(spec, q), row), cfg.index.k, cfg.run.ragas_metrics
        )
        assert again == row, row["variant"]


def test_a_fresh_clone_adopts_the_committed_answers_and_answers_nothing(
    tmp_path: Path, tiny_questions: Path
) -> None:
    cfg = make_cfg(tmp_path, tiny_questions, "run.variants=base,rag,ft,echo")
    run_dir = runner.run(cfg, stages=FakeStages(tmp_path).stages())
    committed, rows = _scores(run_dir), read_answers(run_dir)
    assert set(committed["variant_keys"]) == {"base", "rag", "ft", "echo"}
    shutil.rmtree(run_dir / "cache")  # what a clone has: answers.jsonl and scores.json

    fresh = FakeStages(tmp_path)
    runner.run(cfg, stages=fresh.stages())
    assert fresh.calls == [] and fresh.loaded == 0 and fresh.retriever.calls == 0
    assert read_answers(run_dir) == rows
    scores = _scores(run_dir)
    for name in ("base", "rag", "ft", "echo"):
        assert scores["variants"][name]["exact_match"] == committed["variants"][name]["exact_match"]
        [origin] = scores["variants"][name]["adopted"]
        assert origin["rows"] == 3 and origin["git_commit"] == committed["env"]["git_commit"]
    assert scores["env"]["generator"]["base"] == committed["env"]["generator"]["base"]
    assert scores["variant_keys"] == committed["variant_keys"]
    meta = report.render_metadata(scores, "scores.json")
    assert "answers adopted from the committed run" in meta
    assert "base (3), echo (3), ft (3), rag (3) from " in meta
    assert "adopted" not in report.render_metadata(committed, "scores.json")


def test_only_changed_variants_are_answered_again(tmp_path: Path, tiny_questions: Path) -> None:
    cfg = make_cfg(tmp_path, tiny_questions, "run.variants=base,rag,echo")
    run_dir = runner.run(cfg, stages=FakeStages(tmp_path).stages())
    broken = read_answers(run_dir)
    broken[1]["error"] = "backend exploded"  # base on q2: a failed row is answered again, not adopted
    (run_dir / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in broken), encoding="utf-8")
    shutil.rmtree(run_dir / "cache")

    fresh = FakeStages(tmp_path)
    runner.run(cfg, stages=fresh.stages())
    assert fresh.calls == ["base"]
    scores = _scores(run_dir)
    assert [a["rows"] for a in scores["variants"]["base"]["adopted"]] == [2]  # partly adopted: still said
    assert read_answers(run_dir)[1]["error"] is None

    shutil.rmtree(run_dir / "cache")
    changed = FakeStages(tmp_path)
    runner.run(
        make_cfg(tmp_path, tiny_questions, "run.variants=base,rag,echo", "model.max_new_tokens=7"),
        out_dir=run_dir,
        stages=changed.stages(),
    )
    assert changed.calls == ["base"] * 6  # base and rag (the base model reading): its settings changed
    scores = _scores(run_dir)
    assert "adopted" not in scores["variants"]["base"] and "adopted" not in scores["variants"]["rag"]
    assert [a["rows"] for a in scores["variants"]["echo"]["adopted"]] == [3]  # echo's did not


def test_a_changed_question_file_adopts_nothing(tmp_path: Path, tiny_questions: Path) -> None:
    cfg = make_cfg(tmp_path, tiny_questions, "run.variants=oracle,echo")
    run_dir = runner.run(cfg, stages=FakeStages(tmp_path).stages())
    shutil.rmtree(run_dir / "cache")
    rows = [json.loads(line) for line in tiny_questions.read_text(encoding="utf-8").splitlines()]
    rows[0]["context"] = "Berlim, na Alemanha, é a sua capital."  # same question, another gold context
    tiny_questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    fresh = FakeStages(tmp_path)
    runner.run(cfg, stages=fresh.stages())
    assert fresh.calls == ["base"] * 3  # oracle (the base model) answers again
    assert not any("adopted" in v for v in _scores(run_dir)["variants"].values())


def test_a_run_adopts_another_runs_adapter_answers_and_its_training_cost(
    tmp_path: Path, tiny_questions: Path
) -> None:
    """The split of a long study: one session trains and answers the adapter variants into a run of their
    own; a later one, on a fresh machine, answers the rest and adopts those (the adapter is never loaded)."""
    adapter = tmp_path / "finetune-key"

    def stages(fake: FakeStages) -> Stages:
        fake.adapter = adapter
        return replace(fake.stages(), artifact_key=lambda cfg, stage: f"{stage}-key")

    adapter.mkdir()
    (adapter / "train_metadata.json").write_text(json.dumps({"steps": 7, "tokens_per_s": 110.0}))
    cfg = make_cfg(tmp_path, tiny_questions, "run.variants=ft")  # (an index cost needs a corpus)
    ft_run = runner.run(cfg, tmp_path / "study-ft", stages=stages(FakeStages(tmp_path)))
    assert _scores(ft_run)["costs"]["finetune"]["steps"] == 7
    shutil.rmtree(ft_run / "cache")
    shutil.rmtree(adapter)  # a fresh machine: neither the cache nor the adapter

    fresh = FakeStages(tmp_path)
    full_cfg = make_cfg(tmp_path, tiny_questions, "run.variants=base,ft,echo")
    full = runner.run(full_cfg, tmp_path / "study", stages=stages(fresh), adopt_from=[ft_run])
    assert fresh.calls == ["base"] * 3 and not adapter.exists()  # no adapter trained or loaded
    scores = _scores(full)
    assert scores["costs"]["finetune"]["steps"] == 7  # the training record the adopted answers came from
    assert [o["run"] for o in scores["variants"]["ft"]["adopted"]] == [str(ft_run)]
    assert "adopted" not in scores["variants"]["base"]
    by_variant = {(r["variant"], r["question_id"]): r["answer"] for r in read_answers(full)}
    assert all(
        by_variant[("ft", r["question_id"])] == r["answer"]
        for r in read_answers(ft_run)
        if r["variant"] == "ft"
    )

    shutil.rmtree(full / "cache")  # the full run, committed and cloned again: it adopts from itself
    again = FakeStages(tmp_path)
    runner.run(full_cfg, full, stages=stages(again))
    assert again.calls == [] and again.loaded == 0
    scores = _scores(full)
    assert [o["run"] for o in scores["variants"]["ft"]["adopted"]] == [
        str(ft_run)
    ]  # where they were answered
    assert [o["run"] for o in scores["variants"]["base"]["adopted"]] == [str(full)]
    assert scores["costs"]["finetune"]["steps"] == 7


def test_backfilled_keys_are_computed_by_the_runs_own_commit(tmp_path: Path) -> None:
    """bench.eval.backfill: a run that predates variant_keys gets them from its recorded config, keyed by the
    code of its own commit (a worktree of it); once, and never for a dirty or unknown commit."""
    import subprocess

    from bench.config import BenchError, config_to_dict, load_config
    from bench.eval.backfill import backfill_keys
    from bench.eval.runstate import variant_key
    from bench.eval.stages import default_stages
    from bench.eval.variants import get_spec
    from bench.io import atomic_write_json, read_json

    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    cfg = load_config("smoke", [f"results_dir={tmp_path / 'results'}"])
    run = tmp_path / "run"
    scores = {"config": config_to_dict(cfg), "env": {"git_commit": head.stdout.strip(), "git_dirty": False},
              "variants": {"echo": {}, "prior": {}}}  # fmt: skip
    atomic_write_json(run / "scores.json", scores)
    keys = backfill_keys(run, repo)
    # the no-model baselines' keys hash their code (unchanged since HEAD in a clean checkout) and config
    stages = default_stages()
    assert keys == {n: variant_key(cfg, get_spec(n), stages.artifact_key) for n in ("echo", "prior")}
    saved = read_json(run / "scores.json")
    assert (
        saved["variant_keys"] == keys
        and saved["variant_keys_backfilled"]["git_commit"] == head.stdout.strip()
    )
    with pytest.raises(BenchError, match="already records variant_keys"):
        backfill_keys(run, repo)
    atomic_write_json(
        run / "scores.json", {**scores, "env": {"git_commit": head.stdout.strip(), "git_dirty": True}}
    )
    with pytest.raises(BenchError, match="not a commit"):
        backfill_keys(run, repo)
    atomic_write_json(run / "scores.json", {**scores, "env": {"git_commit": "0" * 40, "git_dirty": False}})
    with pytest.raises(BenchError, match="no checkout of 000000000000"):
        backfill_keys(run, repo)
