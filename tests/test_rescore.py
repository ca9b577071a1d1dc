"""``bench rescore``: metrics recomputed from cached answers; typed baselines added; the strongest no-model
baseline decides whether a model variant beats "no model"."""

from __future__ import annotations

from pathlib import Path

from bench.eval import rescore, scoring
from bench.io import atomic_write_json, iter_jsonl, read_json, write_jsonl
from bench.reporting.tables import baseline_flag, render_baseline_checks

PEOPLE = [  # (name, birth place, birth year): invented
    ("Teodora Prates", "Vila Serena", "1871"),
    ("Bernardo Quintela", "Campos Altos", "1902"),
    ("Iolanda Sarzedo", "Fontelinda", "1931"),
    ("Lúcio Barbacena", "Monte Claro", "1911"),
    ("Clarice Montebelo", "Pedra Lisa", "1980"),
    ("Nuno Ribeiro Dias", "Serra Nova", "1899"),
]


def _row(variant: str, i: int, answer: str, passages: list[str]) -> dict:
    name, place, _ = PEOPLE[i]
    return {
        "variant": variant,
        "question_id": f"q{i}",
        "question": f"Onde nasceu {name}?",
        "answer": answer,
        "answers": [place],
        "gold_title": name,
        "retrieved": [{"title": name}] if variant.endswith("rag") else [],
        "groups": {"relation": "birth_place"},
        "passages": [{"title": name, "section": "", "text": t} for t in passages],
        "finish_reason": "stop",
        "truncated": False,
        "metrics": {"exact_match": 0.0, "chrf": 0.5},  # stale metrics; chrf is not recomputed
        "error": None,
        "latency": {
            "retrieval_ms": 1.0,
            "generation_ms": 50.0,
            "ttft_ms": 5.0,
            "new_tokens": 3,
            "batch_size": 1,
        },
    }


def _run(tmp_path: Path) -> Path:
    rows = []
    for i, (name, place, year) in enumerate(PEOPLE):
        lead = f"{name} ({place}, 2 de maio de {year} — Porto Azul, 1960) foi uma pessoa inventada."
        passages = [f"Sobre {name}: viveu muito tempo em Porto Azul.", lead]
        # the reader answers "place, region" twice (right under the place rule), and a wrong place four times
        rag_answer = f"{place}, Brasil" if i < 2 else "Porto Azul"
        rows += [
            _row("rag", i, rag_answer, passages),
            _row("picker_rag", i, lead, passages),
            _row("oracle", i, place, [lead]),
            _row("picker_oracle", i, lead, [lead]),
            _row("echo", i, f"Onde nasceu {name}?", []),
        ]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_jsonl(run_dir / "answers.jsonl", rows)
    config = {"seed": 0, "index": {"k": 3}, "run": {"bootstrap_samples": 200}}
    scores = {"variants": {"rag": {"peak_rss_mb": 123.0}}, "config": config, "env": {"git_dirty": False}}
    atomic_write_json(run_dir / "scores.json", scores)
    return run_dir


def test_rescore_adds_typed_baselines_and_recomputes_metrics(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    out = rescore.rescore(run_dir, write=False)
    assert out["added"] == ["span_rag", "span_oracle"]
    assert read_json(run_dir / "scores.json")["variants"] == {"rag": {"peak_rss_mb": 123.0}}  # untouched

    rescore.rescore(run_dir)
    scores = read_json(run_dir / "scores.json")
    rows = list(iter_jsonl(run_dir / "answers.jsonl"))
    span = {r["question_id"]: r["answer"] for r in rows if r["variant"] == "span_rag"}
    assert span == {f"q{i}": place for i, (_, place, _) in enumerate(PEOPLE)}
    v = scores["variants"]
    assert v["span_rag"]["exact_match"]["mean"] == 1.0 and v["span_oracle"]["exact_match"]["mean"] == 1.0
    assert v["rag"]["exact_match"]["mean"] == 2 / 6  # "Vila Serena, Brasil" counts under the place rule
    assert v["rag"]["peak_rss_mb"] == 123.0 and scores["env"] == {"git_dirty": False}  # kept
    assert all(r["metrics"]["chrf"] == 0.5 for r in rows if not r["variant"].startswith("span"))  # kept
    assert scores["rescored"]["added_variants"] == ["span_rag", "span_oracle"]

    check = scores["baseline_checks"]["rag"]
    assert check["beats"] is False and check["loses_to"] == ["span_rag"]
    assert check["strongest"] == {"exact_match": "span_rag", "f1_qstripped": "span_rag"}
    assert check["exact_match"] < 0
    assert baseline_flag(scores, "rag") == "⚠ loses to span_rag"
    table = render_baseline_checks(scores)
    assert table is not None
    assert "loses to typed span (retrieved) on EM; typed span (retrieved) on F1 (q-stripped)" in table
    assert scores["baseline_checks"]["oracle"]["beats"] is False  # ties the typed span: not a win

    again = rescore.rescore(run_dir)  # idempotent: nothing more to add, same scores
    assert again["added"] == [] and again["after"] == again["before"]


def test_strongest_baseline_is_chosen_per_metric() -> None:
    comps = {
        "rag-picker_rag": {"exact_match": {"diff": 0.3}, "f1_qstripped": {"diff": -0.1}},
        "rag-span_rag": {"exact_match": {"diff": 0.1, "significant": True}, "f1_qstripped": {"diff": 0.2}},
    }
    check = scoring.baseline_checks(comps)["rag"]
    assert check["strongest"] == {"exact_match": "span_rag", "f1_qstripped": "picker_rag"}
    assert check["exact_match"] == 0.1 and check["f1_qstripped"] == -0.1
    assert check["beats"] is False and check["loses_to"] == ["picker_rag"]
    only_picker = scoring.baseline_checks({"rag-picker_rag": comps["rag-picker_rag"]})["rag"]
    assert (
        only_picker["baseline"] == "picker_rag" and only_picker["strongest"]["f1_qstripped"] == "picker_rag"
    )


def test_run_dirs_under_finds_sweep_points(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    assert rescore.run_dirs_under([tmp_path]) == [run_dir]
    assert rescore.run_dirs_under([run_dir]) == [run_dir]
