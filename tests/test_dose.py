"""The dose sweep (bench/eval/dose.py, dose_summary.py, bench/reporting/dose_report.py): the report rendered
from a synthetic dose.json, the summary's choice / thresholds / monotonicity, and a tiny random model trained
through the sweep's training path (two budgets, one run, the smaller one a snapshot) on a tiny dump whose
questions fall on both subsets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.eval import dose, dose_summary
from bench.questions.load import load_questions, subset_of
from bench.reporting import dose_report
from tests.conftest import make_dump


def _point(arm: str, budget: int, em: float, nll: float, seed: int = 0) -> dict[str, Any]:
    vs = {
        c: {"diff": em - 0.1, "b10": 3, "b01": 1, "p_value": 0.2, "p_holm": 0.6}
        for c in dose_summary.COMPARISONS
    }
    return {
        "name": f"report-{arm}-e{budget}", "subset": "report", "arm": arm, "budget": budget, "seed": seed,
        "tokens_per_page": 100.0 * budget, "train_s": 10.0 * budget, "answer_nll_before": 2.4,
        "answer_nll_after": nll, "nll_trained_before": 3.0, "nll_trained_after": nll,
        "nll_heldout_before": 3.5, "nll_heldout_after": 3.6, "ft": {"em": em, "n": 120, "ci95": [0.0, 0.2]},
        "ft_rag": {"em": 0.7, "n": 120, "ci95": [0.6, 0.8]}, "vs": vs,
    }  # fmt: skip


def _doc() -> dict[str, Any]:
    pts = [
        _point(a, b, 0.02 * b if a == "aug" else 0.01 * b, 2.0 - 0.1 * b)
        for a in ("aug", "mixed")
        for b in (1, 2)
    ]
    refs = {
        v: {"em": e, "n": 120, "ci95": [0.0, 0.1]}
        for v, e in (("base", 0.01), ("prior", 0.035), ("rag", 0.6))
    }
    report = {"n": 120, "reference": refs, "points": pts}
    doc: dict[str, Any] = {
        "profile": "dose", "arms": {"aug": [], "mixed": []}, "budgets": [1, 2], "exposure_note": "note",
        "selection": {"n": 70, "reference": refs, "points": pts}, "report": report,
    }  # fmt: skip
    doc["chosen"] = dose_summary.choose(pts)
    doc["chosen_on_report"] = pts[1]
    doc["worse_on_report"] = {"ft-base": [], "ft-prior": [], "ft_rag-rag": ["report-mixed-e1"]}
    doc["reached"] = dose_summary.reached(pts, refs, (1, 2))
    doc["trained_nll_falling"] = dose_summary.falling(pts, "nll_trained_after")
    doc["answer_nll_falling"] = dose_summary.falling(pts, "answer_nll_after")
    seeds = [pts[1], _point("aug", 2, 0.03, 1.8, 1), _point("aug", 2, 0.05, 1.8, 2)]
    doc["seed_spread"] = dose_summary.seed_spread(seeds, doc["chosen"])
    return doc


def test_summary_chooses_and_finds_thresholds() -> None:
    doc = _doc()
    assert doc["chosen"] == {"arm": "aug", "budget": 2, "tokens_per_page": 200.0, "selection_em": 0.04}
    assert doc["reached"]["aug"]["prior"] == {"budget": 2, "tokens_per_page": 200.0}
    assert doc["reached"]["mixed"]["prior"] is None and doc["reached"]["aug"]["em 0.30"] is None
    assert doc["trained_nll_falling"] == {"aug": True, "mixed": True}
    assert doc["seed_spread"]["ft"]["em"] == [0.04, 0.03, 0.05] and doc["seed_spread"]["ft"]["mean"] == 0.04
    tie = [_point("mixed", 2, 0.1, 1.0), _point("aug", 1, 0.1, 1.0)]
    assert dose_summary.choose(tie)["arm"] == "aug"  # the tie goes to fewer tokens per page


def test_falling_is_false_when_a_budget_rises() -> None:
    pts = [_point("cpt", 1, 0.1, 2.0), _point("cpt", 2, 0.1, 2.5)]
    assert dose_summary.falling(pts, "nll_trained_after") == {"cpt": False}


def test_report_block_and_plot_render_from_dose_json(tmp_path: Path) -> None:
    doc = _doc()
    text = dose_report.render(json.loads(json.dumps(doc)), "dose.png")
    assert "**aug at 2 exposures**" in text and "Holm-corrected over the 4 points it was picked from" in text
    assert "not reached up to 2 exposures" in text and "RAG: report-mixed-e1" in text
    assert "Seeds at the chosen point (3, report subset): closed-book EM mean 0.040" in text
    assert "| aug (chosen) | 2 | – | 200 |" in text and "![closed-book EM" in text
    png = dose_report.plot(doc, tmp_path / "dose.png")
    assert png.stat().st_size > 1000
    assert "Partial sweep" not in text
    short = dose_report.summary(doc)  # README's block: one line per recipe along the budgets, the choice
    assert "- **aug**: closed-book EM 0.020 / 0.040 at 1 / 2 exposures (200 tokens per page at 2)" in short
    assert "**aug at 2 exposures**" in short
    assert "picked from. Seeds at the chosen point: 3, EM 0.030–0.050." in short
    assert "Caveat" not in short and "Partial" not in short
    doc["pending"] = {"arms": ["pit-aug"], "seeds": True}
    partial = dose_report.render(doc)
    assert "**Partial sweep: the recipes `pit-aug` and the extra seeds at the chosen point not run" in partial


def test_estimate_renders_hours() -> None:
    est = {
        "arms": {"aug": {"budgets": [{"budget": 1, "records": 9, "steps": 9, "on_batch": True}]}},
        "s_per_step": [3.0], "hours": [0.1], "steps_total": 9, "tokens_total": 900, "tokens_per_s": [90.0],
        "hours_by_tokens": [0.0],
    }  # fmt: skip
    est["arms"]["aug"]["budgets"][0]["tokens_per_page"] = 50
    text = dose_report.render_estimate(est)
    assert "| aug | 1 | 9 | 9 | yes | 50 |" in text and "0.1 h at 3 s/step" in text


def _titles() -> tuple[str, str]:
    """A page title on each side of the page-hash subset split."""
    names = [f"Vila Fictícia {i}" for i in range(200)]
    sel = next(n for n in names if subset_of({"title": n, "id": n}) == "selection")
    rep = next(n for n in names if subset_of({"title": n, "id": n}) == "report")
    return sel, rep


def _fixture(tmp_path: Path, model: Path) -> list[str]:
    sel, rep = _titles()
    lead = "'''{}''' é uma vila fictícia fundada em {}. Tem um rio."
    pages = [{"title": t, "id": i + 1, "text": lead.format(t, 1700 + i)}
             for i, t in enumerate((sel, rep, "Serra Inventada"))]  # fmt: skip
    dump = tmp_path / "dose.xml"
    dump.write_text(make_dump(pages), encoding="utf-8")
    rows = [{"id": f"d{i}", "question": f"Em que ano foi fundada {t}?", "answers": [str(1700 + i)],
             "title": t, "split": "dev", "relation": "birth_year"}
            for i, t in enumerate((sel, rep))]  # fmt: skip
    rows.append({"id": "t1", "question": "Qual é a altura da Serra Inventada?", "answers": ["900 metros"],
                 "title": "Serra Inventada", "context": "A Serra Inventada tem 900 metros.",
                 "split": "train", "relation": "birth_year"})  # fmt: skip
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return [
        f"model.name={model}", f"corpus={dump}", f"questions={questions}",
        f"finetune.train_questions={questions}",
        "split=dev", f"results_dir={tmp_path / 'results'}", "model.fewshot=0", "finetune.max_length=512",
        "finetune.lora_r=4", "finetune.bf16=false", "finetune.learning_rate=0.001", "finetune.warmup_steps=0",
        "index.embedder=hashing", "sample=first",
    ]  # fmt: skip


@pytest.mark.timeout(600)
def test_tiny_model_trains_two_budgets_through_the_dose_path(tmp_path: Path, tiny_model_dir: Path) -> None:
    from bench.training import finetune

    plan = dose.make_plan("dose", _fixture(tmp_path, tiny_model_dir), "d", ("mixed",), (1, 2), report_limit=5)
    qfile = dose.write_train_questions(plan, minimum=(1, 1))
    assert len(qfile.read_text(encoding="utf-8").splitlines()) == 2  # one question of each subset
    longest = dose.train_config(plan, "mixed", 2)
    # mixed has 2 page records (views) per page and pass: 2 exposures = 1 pass, 1 exposure = half a pass
    assert longest.finetune.epochs == 1.0 and longest.finetune.order == "exposure"
    assert longest.finetune.snapshot_epochs == (0.5,) and longest.finetune.batch_size == 1
    finetune.run_finetune(longest)  # one training: the 1-exposure adapter is its snapshot
    metas = {}
    for b in (1, 2):
        path = (
            finetune.adapter_dir(dose.train_config(plan, "mixed", b, snapshots=False)) / "train_metadata.json"
        )
        metas[b] = json.loads(path.read_text(encoding="utf-8"))
    assert "snapshot_of" in metas[1] and "snapshot_of" not in metas[2]
    assert metas[1]["coverage"]["evaluated_pages"] == metas[1]["coverage"]["trained_pages"] == 2
    facts = {b: dose_summary.adapter_facts(m, ["d0", "d1"]) for b, m in metas.items()}
    assert facts[2]["tokens_per_page"] > facts[1]["tokens_per_page"] > 0
    assert facts[1]["answer_nll_after"] is not None and facts[2]["nll_trained_after"] is not None
    stages = dose.stages_for(longest, lambda cfg, adapter: {})
    eval_cfg = dose.eval_config(plan, "selection", "mixed", 2)
    assert stages.adapter_dir(eval_cfg) == finetune.adapter_dir(longest)
    assert stages.artifact_key(eval_cfg, "finetune") == dose.artifact_key(longest, "finetune")


def test_committed_points_are_not_run_again(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger: a point whose results and key are recorded is skipped (its training too); a changed
    configuration or a lost results file runs it again; the partial summary sees the finished arm."""
    overrides = _fixture(tmp_path, tiny_model_dir)
    plan = dose.make_plan("dose", overrides, "d", ("mixed",), (1, 2), report_limit=5)
    dose.write_train_questions(plan, minimum=(1, 1))
    calls: list[str] = []

    def fake_run(cfg: Any, run_dir: Path, stages: Any = None) -> Path:
        calls.append(run_dir.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "scores.json").write_text("{}\n", encoding="utf-8")
        rows = [
            {"variant": v, "question_id": q["id"], "metrics": {"exact_match": float(v != "base")}}
            for v in cfg.run.variants for q in load_questions(cfg)
        ]  # fmt: skip
        (run_dir / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        if stages is not None:  # what the training would have written
            cov = {"evaluated_pages": 2, "trained_pages": 2}
            meta = {"steps": 3, "tokens_seen": 40, "coverage": cov, "loss_curve": [1.0]}
            stages.adapter_dir(cfg).mkdir(parents=True, exist_ok=True)
            (stages.adapter_dir(cfg) / "train_metadata.json").write_text(json.dumps(meta), encoding="utf-8")
        return run_dir

    monkeypatch.setattr(dose.runner, "run", fake_run)
    monkeypatch.setattr(dose, "write_train_questions", lambda plan: plan.root / dose.TRAIN_QUESTIONS)
    dose.run_grid(plan)
    points = [f"{s}-mixed-e{b}" for s in dose.SUBSETS for b in (2, 1)]
    assert sorted(calls) == sorted(["selection-reference", "report-reference", *points])
    book = dose.ledger(plan)
    assert book["selection-mixed-e2"]["adapter"] == {
        "epochs": None, "steps": 3, "train_time_s": None, "tokens_seen": 40,
        "coverage": {"evaluated_pages": 2, "trained_pages": 2}, "probe": None,
    }  # fmt: skip
    assert book["report-reference"]["adapter"] is None
    assert dose_summary.finished_arms(plan) == ("mixed",)
    doc = json.loads(dose_summary.write(plan, seeds=False).read_text(encoding="utf-8"))
    assert doc["pending"] == {"arms": ["aug", "pit-aug"], "seeds": 2} and list(doc["arms"]) == ["mixed"]
    assert [p["name"] for p in doc["report"]["points"]] == ["report-mixed-e1", "report-mixed-e2"]
    assert (
        doc["report"]["points"][0]["tokens_per_page"] == 20.0
        and doc["report"]["points"][0]["ft"]["em"] == 1.0
    )
    # the fixture's leads are no biography: the question file's pairs are not read from the page text
    assert {k: doc["fact_source"][k] for k in ("pages", "identical", "facts")} == {
        "pages": 2, "identical": 0, "facts": 2,
    }  # fmt: skip
    rendered = dose_report.render(doc)
    assert "**Caveat:** the augmented texts restate" in rendered and "the same on 0 of 2 pages" in rendered
    assert "Partial sweep" in rendered and "| mixed (chosen) | 1 | 2 / 2 | 20 |" in rendered, rendered
    calls.clear()
    dose.run_grid(plan)
    assert calls == []
    (plan.root / "report-mixed-e1" / "answers.jsonl").unlink()
    dose.run_grid(plan)
    assert calls == ["report-mixed-e1"]
    calls.clear()
    # --seeds-only: the extra seeds at the point chosen among the finished recipes (a tie: fewer tokens)
    doc = json.loads(dose_summary.run(plan, seeds_only=True).read_text(encoding="utf-8"))
    assert calls == ["report-mixed-e1-seed1", "report-mixed-e1-seed2"]
    assert doc["pending"]["seeds"] == 0 and doc["seed_spread"]["seeds"] == [0, 1, 2]
    assert "seeds at the chosen point" not in dose_report.render(doc)
    calls.clear()
    other = dose.make_plan("dose", [*overrides, "finetune.learning_rate=0.002"], "d", ("mixed",), (1, 2), 5)
    dose.run_grid(other)  # another adapter: every point again, the untrained references not
    assert sorted(calls) == sorted(points)


def test_study_section_leaves_the_selection_out_and_names_a_mismatch(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The choice at scale (bench/eval/dose_study.py): the study run's questions of the selection subset are
    left out of the verdict, and a study adapter trained otherwise than the chosen point is named, not
    judged."""
    from bench.config import config_to_dict
    from bench.eval import dose_study

    plan = dose.make_plan("dose", _fixture(tmp_path, tiny_model_dir), "d", ("aug",), (1, 2), report_limit=5)
    ft = config_to_dict(dose.train_config(plan, "aug", 2, snapshots=False))["finetune"]
    run = tmp_path / "study"
    run.mkdir()
    rows = [
        {"variant": v, "question_id": q, "metrics": {"exact_match": float(v.startswith("ft") or q == "d0")}}
        for v in dose_study.VARIANTS for q in ("d0", "d1")
    ]  # fmt: skip
    (run / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (run / "scores.json").write_text(json.dumps({"config": {"finetune": {**ft, "probe": False}}}), "utf-8")
    got = dose_study.section(plan, {"arm": "aug", "budget": 2}, run)
    assert got is not None and got["mismatch"] == {} and got["excluded_selection"] == 1
    assert got["em"]["ft"] == {"em": 1.0, "n": 1, "ci95": got["em"]["ft"]["ci95"]}
    assert got["em"]["base"]["em"] == 0.0 and got["vs"]["ft-base"]["b10"] == 1
    line = dose_report.study_lines({"study": got})[0]
    assert line.startswith("**At scale**") and "the 1 of the selection subset left out" in line
    (run / "scores.json").write_text(
        json.dumps({"config": {"finetune": {**ft, "learning_rate": 0.5}}}), "utf-8"
    )
    got = dose_study.section(plan, {"arm": "aug", "budget": 2}, run)
    assert got is not None and got["mismatch"] == {"learning_rate": [0.5, ft["learning_rate"]]}
    assert "not measured yet" in dose_report.study_lines({"study": got})[0]
    assert dose_study.section(plan, {"arm": "aug", "budget": 2}, tmp_path / "none") is None


def test_the_study_profile_trains_the_committed_choice() -> None:
    """bench/configs/study.toml's fine-tuning is the point the committed dose sweep chose (every setting that
    shapes the adapter, as dose_study compares them): a new choice must be carried into the study profile."""
    from bench.config import config_to_dict, load_config
    from bench.eval import dose_study
    from bench.io import read_json

    doc = read_json(Path(__file__).resolve().parents[1] / "results" / dose_report.SWEEP / dose_report.DOSE)
    plan = dose.make_plan(doc["profile"], list(doc.get("overrides") or []), "ft-dose")
    chosen = config_to_dict(
        dose.train_config(plan, doc["chosen"]["arm"], doc["chosen"]["budget"], snapshots=False)
    )
    study = config_to_dict(load_config("study"))
    assert dose_study.mismatch(study["finetune"], chosen["finetune"]) == {}
    assert study["seed"] == chosen["seed"]


def test_the_defaults_are_the_committed_choice_at_a_smaller_budget() -> None:
    """The dataclass defaults (`make bench`) train the point the committed dose sweep chose, at a smaller
    budget (docs/finetune.md "The defaults"): every other setting that shapes the adapter is the chosen
    one."""
    from bench.config import Config, config_to_dict
    from bench.eval import dose_study
    from bench.io import read_json

    doc = read_json(Path(__file__).resolve().parents[1] / "results" / dose_report.SWEEP / dose_report.DOSE)
    plan = dose.make_plan(doc["profile"], list(doc.get("overrides") or []), "ft-dose")
    chosen = config_to_dict(
        dose.train_config(plan, doc["chosen"]["arm"], doc["chosen"]["budget"], snapshots=False)
    )
    defaults = config_to_dict(Config())["finetune"]
    assert dose_study.mismatch({**defaults, "epochs": chosen["finetune"]["epochs"]}, chosen["finetune"]) == {}
    assert 0 < defaults["epochs"] < chosen["finetune"]["epochs"]
