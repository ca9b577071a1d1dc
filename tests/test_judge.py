"""Judge metrics through ragas against a real local OpenAI-compatible server (tests/openai_server.py: the
project's transformers backend on the tiny random model behind /v1/chat/completions), not a mock.

The tiny model writes garbage, so these tests check the plumbing: every judge call reaches the server, each
verdict keeps the judge's raw completions, a score is in [0, 1] or the verdict says why it did not parse,
a rerun is served from the cache (the server sees no new request), and a server that does not answer gives
transport errors that are not cached."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bench.config import Config, JudgeConfig, ModelConfig
from bench.eval.judge import judge_run
from bench.eval.judge_stats import agreement, cohen_kappa
from tests.openai_server import serve

OPEN_RUN = Path(__file__).resolve().parents[1] / "results" / "runs" / "open"


def run_dir_with_open_answers(tmp_path: Path) -> Path:
    """A copy of the committed open run's answers (22 questions, RAG answers with their passages)."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(OPEN_RUN / "answers.jsonl", run / "answers.jsonl")
    return run


def judge_cfg(base_url: str, **judge: object) -> Config:
    jc = JudgeConfig(enabled=True, base_url=base_url, model="tiny-judge", of_variants=("rag",), max_tokens=24,
                     timeout_s=60.0, max_retries=0, concurrency=2)  # fmt: skip
    return Config(judge=replace(jc, **judge))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_generator(tiny_model_dir: Path) -> object:
    from bench.generation.transformers_backend import transformers_generators

    model = Config(model=ModelConfig(name=str(tiny_model_dir), backend="transformers", dtype="float32",
                                     stop_at_newline=False))  # fmt: skip
    return transformers_generators(model, None)["base"]


@pytest.mark.timeout(240)
def test_two_judged_answers_reach_the_server_keep_its_raw_text_and_are_cached(
    tiny_generator: object, tmp_path: Path
) -> None:
    """The quick version of the next test (the fast suite): two answers, answer correctness only."""
    run = run_dir_with_open_answers(tmp_path)
    with serve(tiny_generator, max_new_tokens=16) as server:
        cfg = judge_cfg(server.base_url, max_questions=2, metrics=("answer_correctness",), max_tokens=16)
        first = judge_run(cfg, run)
        asked = server.requests
        again = judge_run(cfg, run)
        assert server.requests == asked >= 2
    assert first["calls"]["asked"] == 2 and again["calls"] == {**first["calls"], "asked": 0, "cached": 2}
    verdicts = [json.loads(line) for line in (run / "judge.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [v["qid"] for v in verdicts] == ["open-pt-01", "open-pt-02"]
    assert sum(len(v["raw"]) for v in verdicts) == asked
    assert all((v["score"] is not None) != bool(v["unparseable"]) and v["error"] is None for v in verdicts)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ragas_judge_on_22_open_answers_records_raw_verdicts_and_is_cached(
    tiny_generator: object, tmp_path: Path
) -> None:
    run = run_dir_with_open_answers(tmp_path)
    with serve(tiny_generator, max_new_tokens=24) as server:
        cfg = judge_cfg(server.base_url)
        first = judge_run(cfg, run)
        asked = server.requests
        again = judge_run(cfg, run)
        assert server.requests == asked  # the rerun asked the judge nothing
    assert first["calls"] == {"verdicts": 44, "asked": 44, "cached": 0, "transport_errors": 0}
    assert again["calls"] == {"verdicts": 44, "asked": 0, "cached": 44, "transport_errors": 0}
    assert asked >= 44 and server.bodies[0]["model"] == "tiny-judge"
    verdicts = [json.loads(line) for line in (run / "judge.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(verdicts) == 44 and {v["metric"] for v in verdicts} == {"answer_correctness", "faithfulness"}
    assert sum(len(v["raw"]) for v in verdicts) == asked  # every completion the server sent is recorded
    for v in verdicts:
        assert v["error"] is None and v["raw"] and all(isinstance(t, str) for t in v["raw"])
        assert (v["score"] is not None and 0.0 <= v["score"] <= 1.0) != bool(v["unparseable"])
    summary = json.loads((run / "judge.json").read_text(encoding="utf-8"))
    cell = summary["metrics"]["rag"]["answer_correctness"]
    assert cell["judged"] == 22 and cell["n"] + cell["unparseable"] == 22
    assert summary["judge"]["model"] == "tiny-judge" and summary["agreement"]["n"] == cell["n"]


VLLM_PYTHON = Config().path(".venv-vllm/bin/python")


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=f"{VLLM_PYTHON} missing: make install EXTRAS=vllm")
def test_an_empty_judge_base_url_starts_the_projects_vllm_engine_for_the_judge(
    vllm_tiny_dir: Path, tmp_path: Path
) -> None:
    """judge.base_url = "": vLLM's real OpenAI server (bench.generation.vllm_engine) serves the judge model
    for the 22 answers, and is not started again when every verdict is cached."""
    model = tmp_path / "judge-model"  # the tiny vLLM model with room for ragas' few-shot prompts
    shutil.copytree(vllm_tiny_dir, model)
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 8192}), "utf-8")
    run = run_dir_with_open_answers(tmp_path)
    cfg = replace(judge_cfg("", model=str(model), metrics=("answer_correctness",), concurrency=8),
                  results_dir=str(tmp_path))  # fmt: skip
    cfg = replace(cfg, model=replace(cfg.model, dtype="float32"),
                  vllm=replace(cfg.vllm, max_model_len=8192, kv_cache_gib=1))  # fmt: skip
    first = judge_run(cfg, run)
    logs = sorted((tmp_path / "vllm").glob("vllm-*.log"))
    again = judge_run(cfg, run)
    assert first["calls"] == {"verdicts": 22, "asked": 22, "cached": 0, "transport_errors": 0}
    assert again["calls"]["cached"] == 22 and sorted((tmp_path / "vllm").glob("vllm-*.log")) == logs
    assert len(logs) == 1  # one engine, started once
    verdicts = [json.loads(line) for line in (run / "judge.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(v["raw"] and v["judge"]["base_url"].startswith("http://127.0.0.1:") for v in verdicts)
    assert all((v["score"] is not None) != bool(v["unparseable"]) for v in verdicts)


def test_a_judge_that_does_not_answer_gives_errors_that_are_asked_again(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = run_dir_with_open_answers(tmp_path)
    cfg = judge_cfg(f"http://127.0.0.1:{port}/v1", max_questions=2, metrics=("answer_correctness",),
                    timeout_s=5.0)  # fmt: skip
    first = judge_run(cfg, run)
    again = judge_run(cfg, run)
    assert first["calls"]["transport_errors"] == 2 and first["calls"]["asked"] == 2
    assert again["calls"]["asked"] == 2  # errors are not cached
    cell = again["metrics"]["rag"]["answer_correctness"]
    assert cell == {"judged": 2, "n": 0, "unparseable": 0, "errors": 2, "mean": None}


def test_agreement_with_exact_match_counts_short_answers_only() -> None:
    assert cohen_kappa(20, 5, 10, 15) == pytest.approx(0.4)
    assert cohen_kappa(0, 0, 0, 0) is None and cohen_kappa(3, 0, 0, 0) is None
    verdicts = [
        {"question_id": "rag/a", "metric": "answer_correctness", "score": 0.9},
        {"question_id": "rag/b", "metric": "answer_correctness", "score": 0.1},
        {"question_id": "rag/c", "metric": "answer_correctness", "score": 0.8},
        {"question_id": "rag/d", "metric": "answer_correctness", "score": 1.0},  # long gold: not counted
        {"question_id": "rag/a", "metric": "faithfulness", "score": 0.0},  # not a correctness verdict
        {"question_id": "rag/e", "metric": "answer_correctness", "score": None},  # unparseable
    ]
    ems = {"rag/a": (1.0, ["1941"]), "rag/b": (0.0, ["Lisboa"]), "rag/c": (0.0, ["Porto"]),
           "rag/d": (0.0, ["uma resposta longa com muitas palavras"]), "rag/e": (1.0, ["x"])}  # fmt: skip
    out = agreement(verdicts, ems, threshold=0.5)
    assert (out["n"], out["both_right"], out["judge_only"], out["em_only"], out["both_wrong"]) == (
        3,
        1,
        1,
        0,
        1,
    )
    assert out["rate"] == pytest.approx(2 / 3)
