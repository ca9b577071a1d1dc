"""The long-form twin of a run (bench/eval/longform.py): a question per page, the fact run's adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_runner import FakeStages

from bench.config import BenchError, Config, load_config
from bench.core.prompts import get_reader
from bench.eval import longform, runner


def _row(qid: str, title: str, relation: str, answer: str, article_id: int) -> dict[str, Any]:
    return {"id": qid, "question": f"Pergunta {qid} sobre {title}?", "answers": [answer], "title": title,
            "context": f"{title} ({answer}) é uma pessoa.", "split": "dev", "lang": "pt",
            "relation": relation, "article_id": article_id, "stratum": "mid"}  # fmt: skip


ROWS = [
    _row("a1", "Lisboa", "birth_year", "1950", 4),
    _row("a2", "Lisboa", "death_place", "Porto", 4),
    _row("b1", "Berlim", "birth_place", "Alemanha", 1),
    _row("c1", "Braga", "municipality_state", "Minas Gerais", 9),
]


def _cfg(tmp_path: Path, *extra: str) -> Config:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    return load_config(
        "default",
        [f"questions={path}", f"results_dir={tmp_path / 'results'}", f"corpus={tmp_path / 'missing.xml'}",
         "split=dev", "limit=0", "sample=first", "run.bootstrap_samples=50", "model.batch_size=1",
         "run.latency_probe=3",
         *extra],
    )  # fmt: skip


def test_one_open_question_per_page_with_every_fact_as_gold() -> None:
    out = longform.longform_questions(ROWS, pages=2)
    assert [q["question"] for q in out] == ["Quem foi Lisboa?", "Quem é Berlim?"]  # a death fact → "foi"
    assert out[0]["answers"] == ["1950", "Porto"] and out[0]["facts"] == ["birth_year", "death_place"]
    assert out[0]["article_id"] == 4 and out[0]["relation"] == "longform" and out[0]["id"] == "longform-a1"
    assert longform.longform_questions(ROWS, pages=9)[2]["question"] == "O que é Braga?"
    with pytest.raises(BenchError, match="no 'title'"):
        longform.longform_questions([{**ROWS[0], "title": ""}], pages=1)


def test_longform_run_answers_in_sentences_with_the_fact_runs_adapter(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "run.longform_pages=2", "run.variants=base,rag,ft,echo,prior")
    fake = FakeStages(tmp_path)
    seen: list[Config] = []
    stages = fake.stages()
    adapter_dir = stages.adapter_dir
    stages.adapter_dir = lambda c: seen.append(c) or adapter_dir(c)  # type: ignore[func-returns-value]
    prompts: list[list[dict[str, str]]] = []
    make = stages.make_generators

    def spy(c: Config, adapter: Path | None) -> dict[str, Any]:
        gens = make(c, adapter)
        for gen in gens.values():
            inner = gen.generate
            gen.generate = lambda m, n, inner=inner: prompts.append(m) or inner(m, n)
        return gens

    stages.make_generators = spy
    run_dir = runner.run(cfg, stages=stages)
    rows = [json.loads(line) for line in (run_dir / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["variant"] for r in rows} == {"base", "rag", "ft"}  # no-model baselines left out
    assert {r["question_id"] for r in rows} == {"longform-a1", "longform-b1"}
    # the long-form reader: its instruction, no worked examples, the whole answer kept
    assert all(m[0]["content"] == get_reader("longform").system and len(m) == 2 for m in prompts)
    assert len(prompts) == 6
    # the adapter is the fact run's (its reader and questions picked the training pages), not the twin's
    assert seen and all(c.model.reader == "extractive" and c.run.longform_pages == 2 for c in seen)
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert scores["config"]["model"]["reader"] == "longform"
    assert scores["config"]["run"]["latency_probe"] == 0  # timed in the fact run, not twice
    ft = scores["variants"]["ft"]  # the fake ft answers in English: the language rate sees it
    assert ft["lang_en"]["n"] == 2 and ft["lang_en"]["mean"] == 1.0
    assert scores["variants"]["base"]["lang_pt"]["mean"] == 1.0


def test_longform_needs_a_model_variant(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "run.longform_pages=2", "run.variants=echo,prior")
    with pytest.raises(BenchError, match="no model variant"):
        runner.run(cfg, stages=FakeStages(tmp_path).stages())


def test_run_with_longform_pages_answers_the_twin_next_on_kept_engines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`bench run --longform-pages N`: the fact run, then its long-form twin (run.longform_pages = N) into
    OUTPUT-longform, both inside one kept_engines block (one engine start each for base and FT weights)."""
    from bench import __main__ as cli
    from bench.generation import vllm_backend

    calls: list[tuple[int, Path, bool]] = []

    def fake_run(cfg: Config, out_dir: Path | None = None, **_: Any) -> Path:
        assert out_dir is not None
        calls.append((cfg.run.longform_pages, out_dir, vllm_backend._KEPT is not None))
        return out_dir

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr("bench.tracking.track.track_run", lambda cfg, run_dir: None)
    out = tmp_path / "runs" / "default"
    argv = ["run", "--profile", "default", "--set", f"results_dir={tmp_path}", "--output", str(out)]
    assert cli.main([*argv, "--longform-pages", "3"]) == 0
    assert calls == [(0, out, True), (3, tmp_path / "runs" / "default-longform", True)]
    assert vllm_backend._KEPT is None  # the block ended: every engine stopped
    calls.clear()
    assert cli.main(argv) == 0
    assert calls == [(0, out, False)]
