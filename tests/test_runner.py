from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.config import BenchError, Config, load_config
from bench.errors import BackendError
from bench.eval import answer_loop, runner
from bench.eval.stages import Stages
from bench.generation.base import Generation
from bench.questions.load import load_questions
from bench.retrieval.index import Hit

# Passages and generations are the real records (Hit, Generation), not look-alikes: a field added to them
# (finish_reason, ...) reaches these tests too.
PASSAGES = {
    "Alemanha": Hit("c1", 1, "Berlim", "", "Berlim é a capital da Alemanha.", 0.9),
    "Lisboa": Hit("c2", 4, "Lisboa", "Geografia", "Lisboa fica na foz do Tejo.", 0.8),
    "rio": Hit("c3", 4, "Lisboa", "", "Lisboa é a capital de Portugal, junto ao rio Tejo.", 0.7),
}


class FakeRetriever:
    def __init__(self) -> None:
        self.calls = 0

    def search(
        self, query: str, k: int | None = None, mode: str | None = None, article_id: int | None = None
    ) -> list[Hit]:
        self.calls += 1
        hits = [h for word, h in PASSAGES.items() if word in query]
        hits = [*hits, PASSAGES["Lisboa"]]
        return [h for h in hits if article_id is None or h.article_id == article_id][: k or 3]


class FakeGenerator:
    """Portuguese for base, English for ft (the seed bug made visible); quotes the first passage if any."""

    def __init__(self, name: str, log: list[str], fail_at: int = 0, exc: BaseException | None = None) -> None:
        self.name, self.log, self.fail_at, self.exc = name, log, fail_at, exc
        self.prestarted: list[str] = []

    def prestart(self) -> None:  # a backend whose engine loads in the background (vLLM)
        self.prestarted.append(self.name)

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation:
        assert messages[0]["role"] == "system" and "português" in messages[0]["content"]
        user = messages[-1]["content"]
        assert "Pergunta:" in user
        self.log.append(self.name)
        if self.fail_at and len(self.log) == self.fail_at:
            raise self.exc or RuntimeError("backend exploded")
        if "Contexto:" in user:
            text = "A resposta está no texto: " + user.split("] ", 1)[1].split("\n")[0]
        elif self.name == "ft":
            text = "I am not sure about the answer to this question."
        else:
            text = "Não tenho a certeza da resposta a esta pergunta."
        return Generation(text, 20, 8, 5.0, 40.0)

    def info(self) -> dict[str, Any]:
        return {"backend": "fake", "name": self.name}

    def close(self) -> None:
        pass


class BatchingFakeGenerator(FakeGenerator):
    """FakeGenerator plus ``generate_batch``; a batch holding a question with ``poison`` in it raises."""

    def __init__(self, name: str, log: list[str], batches: list[int], poison: str = "") -> None:
        super().__init__(name, log)
        self.batches, self.poison = batches, poison

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation:
        if self.poison and self.poison in messages[-1]["content"]:
            raise BackendError("poisoned question")
        return super().generate(messages, max_new_tokens)

    def generate_batch(self, batch: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
        self.batches.append(len(batch))
        if self.poison and any(self.poison in m[-1]["content"] for m in batch):
            raise RuntimeError("batch exploded")
        gens = [super(BatchingFakeGenerator, self).generate(m, max_new_tokens) for m in batch]
        return [Generation(g.text, g.prompt_tokens, g.new_tokens, 5.0, 40.0 / len(batch)) for g in gens]


ALL = (
    "base",
    "rag",
    "ft",
    "ft_rag",
    "oracle",
    "echo",
    "prior",
    "picker_oracle",
    "picker_rag",
    "span_oracle",
    "span_rag",
)


class FakeStages:
    def __init__(
        self, tmp: Path, fail_at: int = 0, exc: BaseException | None = None, leaked: set[str] = frozenset()
    ):
        self.batching: tuple[list[int], str] | None = None  # (batch sizes seen, poison) → batching generators
        self.calls: list[str] = []
        self.prestarted: list[str] = []
        self.loaded = 0
        self.retriever = FakeRetriever()
        self.adapter = tmp / "adapter"
        self.fail_at, self.exc, self.leaked = fail_at, exc, set(leaked)

    def stages(self) -> Stages:
        def ensure_adapter(cfg: Config) -> Path:
            self.adapter.mkdir(exist_ok=True)
            return self.adapter

        def make_generators(cfg: Config, adapter: Path | None) -> dict[str, Any]:
            self.loaded += 1
            if self.batching is not None:
                return {n: BatchingFakeGenerator(n, self.calls, *self.batching) for n in ("base", "ft")}
            gens = {"base": FakeGenerator("base", self.calls, self.fail_at, self.exc)}
            if adapter is not None:
                gens["ft"] = FakeGenerator("ft", self.calls, self.fail_at, self.exc)
            for g in gens.values():
                g.prestarted = self.prestarted  # one list: the order the runner started them in
            return gens

        return Stages(
            open_retriever=lambda cfg: self.retriever,
            ensure_adapter=ensure_adapter,
            adapter_dir=lambda cfg: self.adapter,
            make_generators=make_generators,
            training_question_ids=lambda cfg: self.leaked,
            artifact_key=lambda cfg, stage: f"{stage}-of-{cfg.corpus}",
        )


def make_cfg(tmp_path: Path, questions: Path, *extra: str) -> Config:
    return load_config(
        "faquad",
        [
            f"questions={questions}",
            f"results_dir={tmp_path / 'results'}",
            f"corpus={tmp_path / 'missing-corpus.xml'}",
            "split=",
            "run.bootstrap_samples=200",
            "model.batch_size=1",
            "run.latency_probe=0",  # the tests count generator calls; the probe has its own test
            *extra,
        ],
    )


def read_answers(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "answers.jsonl").read_text(encoding="utf-8").splitlines()]


def test_run_writes_answers_and_scores(tmp_path: Path, tiny_questions: Path) -> None:
    cfg = make_cfg(tmp_path, tiny_questions)
    fake = FakeStages(tmp_path)
    run_dir = runner.run(cfg, stages=fake.stages())
    assert run_dir == tmp_path / "results" / "runs" / runner.run_id(cfg)
    assert run_dir.name.startswith("faquad-")
    rows = read_answers(run_dir)
    assert [(r["variant"], r["question_id"]) for r in rows] == [
        (v, q) for v in ALL for q in ("q1", "q2", "q3")
    ]
    assert fake.retriever.calls == 12 and len(fake.calls) == 15  # rag, ft_rag, picker_rag, span_rag retrieve
    assert fake.prestarted == [
        "base",
        "ft",
    ]  # every engine the run needs starts loading before the first answer
    rag_q1 = rows[3]
    assert rag_q1["answers"] == ["Berlim"] and rag_q1["retrieved"][0]["chunk_id"] == "c1"
    assert rag_q1["metrics"]["contains"] == 1.0 and rag_q1["metrics"]["recall@k"] == 1.0
    # the answer row names exactly the passages the prompt held, and whether the answer hit the token cap
    assert rag_q1["passages"][0]["text"] == "Berlim é a capital da Alemanha."
    assert rag_q1["truncated"] is False and rag_q1["finish_reason"] == "stop"
    assert rag_q1["metrics"]["answer_in_context@k"] == 1.0 and rag_q1["metrics"]["truncated"] == 0.0
    assert set(rag_q1["latency"]) == {
        "retrieval_ms",
        "generation_ms",
        "ttft_ms",
        "new_tokens",
        "tokens_per_s",
        "batch_size",
    }
    assert rag_q1["latency"]["tokens_per_s"] == pytest.approx(200.0)
    assert rows[0]["retrieved"] == [] and rows[0]["metrics"]["recall@k"] is None and rows[0]["error"] is None
    assert rows[0]["passages"] == [] and rows[0]["metrics"]["answer_in_context@k"] is None
    # ragas non-LLM metrics: context recall only where chunks were retrieved (the gold paragraph is c1's text)
    assert rag_q1["metrics"]["ragas_context_recall"] == 1.0
    assert rows[0]["metrics"]["ragas_context_recall"] is None
    oracle_q1 = rows[12]
    assert oracle_q1["metrics"]["contains"] == 1.0 and 0 < oracle_q1["metrics"]["rouge_l"] < 1
    assert oracle_q1["metrics"]["answer_in_context@k"] == 1.0  # computed on the gold passage it was given
    assert rows[0]["metrics"]["rouge_l"] == 0.0  # "Não tenho a certeza..." shares no word with "Berlim"
    echo_q1 = rows[15]
    assert echo_q1["answer"] == echo_q1["question"] and echo_q1["metrics"]["f1_qstripped"] == 0.0

    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert set(scores) == {
        "variants",
        "comparisons",
        "baseline_checks",
        "groups",
        "prompt",
        "config",
        "config_hash",
        "run_id",
        "env",
        "datasets",
        "created",
        "costs",
        "artifacts",
        "attribution",
        "variant_keys",
    }
    corpus = scores["config"]["corpus"]  # the upstream artifact keys the answers were keyed by
    assert scores["artifacts"] == {"index": f"index-of-{corpus}", "finetune": f"finetune-of-{corpus}"}
    assert scores["costs"] == {}  # no manifest for the fake index, no adapter metadata for the fake adapter
    v = scores["variants"]
    assert set(v) == set(ALL)
    for name, s in v.items():
        for metric in (
            "exact_match",
            "contains",
            "truncated",
            "lang_pt",
            "lang_en",
            "lang_other",
            "lang_und",
        ):
            assert set(s[metric]) == {"mean", "ci95", "n", "interval"} and s[metric]["interval"] == "wilson"
        for metric in ("f1", "f1_qstripped"):
            assert s[metric]["interval"] == "bootstrap"
        assert s["n"] == 3 and s["failed"] == 0 and s["peak_vram_mb"] is None
        retrieving = ("rag", "ft_rag", "picker_rag", "span_rag")
        assert (s["recall@k"] is not None) == (name in retrieving)
        assert (s["ragas_context_recall"] is not None) == (name in retrieving)
        assert set(s["chrf"]) >= {"mean", "ci95"} and 0.0 <= s["chrf"]["mean"] <= 1.0
        if name in ("echo", "prior", "picker_oracle", "picker_rag", "span_oracle", "span_rag"):
            assert s["tokens_per_s"] is None and s["peak_rss_mb"] is not None
        else:
            assert s["latency_p50_ms"] >= 40.0 and s["tokens_per_s"] == pytest.approx(200.0)
            assert s["peak_rss_mb"] > 100  # a python process with torch/numpy loaded
    assert v["base"]["lang_pt"]["mean"] == 1.0 and v["ft"]["lang_en"]["mean"] == 1.0
    assert v["oracle"]["contains"]["mean"] == 1.0 and v["base"]["contains"]["mean"] == 0.0
    assert v["echo"]["f1_qstripped"]["mean"] == 0.0 and v["echo"]["exact_match"]["mean"] == 0.0
    assert set(scores["comparisons"]) == {
        "rag-base", "ft-base", "ft_rag-rag", "ft_rag-ft", "oracle-rag",
        "base-echo", "ft-echo", "base-prior", "ft-prior", "rag-picker_rag", "ft_rag-picker_rag",
        "oracle-picker_oracle",
        "rag-span_rag", "ft_rag-span_rag", "oracle-span_oracle",
    }  # fmt: skip
    assert set(scores["comparisons"]["rag-base"]["f1"]) == {"diff", "ci95", "significant", "n", "test", "mde"}
    assert "p_value" in scores["comparisons"]["rag-base"]["exact_match"]
    assert set(scores["baseline_checks"]) == {"base", "ft", "rag", "ft_rag", "oracle"}
    assert scores["prompt"]["reader"] == "extractive" and scores["prompt"]["prompt_id"]
    assert scores["run_id"] == run_dir.name and scores["config"]["run"]["bootstrap_samples"] == 200
    assert scores["env"]["generator"]["base"] == {"backend": "fake", "name": "base"}
    assert "git_commit" in scores["env"] and "git_dirty" in scores["env"]
    assert scores["datasets"]["questions"]["n"] == 3 and scores["datasets"]["corpus"][0]["sha256"] is None


def test_resume_after_kill_has_no_lost_or_duplicated_rows(tmp_path: Path, tiny_questions: Path) -> None:
    cfg = make_cfg(tmp_path, tiny_questions, "run.variants=base,rag,ft")
    killed = FakeStages(tmp_path, fail_at=5, exc=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        runner.run(cfg, stages=killed.stages())
    run_dir = tmp_path / "results" / "runs" / runner.run_id(cfg)
    assert not (run_dir / "scores.json").exists()
    with (run_dir / "cache" / "rag.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"key": "torn li')  # a write cut short by SIGKILL

    resumed = FakeStages(tmp_path)
    runner.run(cfg, stages=resumed.stages())
    assert len(resumed.calls) == 9 - 4  # 4 answers finished before the kill are not regenerated
    rows = read_answers(run_dir)
    pairs = [(r["variant"], r["question_id"]) for r in rows]
    assert len(pairs) == len(set(pairs)) == 9

    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    scores["created"] = "2000-01-01T00:00:00+00:00"
    (run_dir / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    again = FakeStages(tmp_path)
    runner.run(cfg, stages=again.stages())
    assert again.calls == [] and again.loaded == 0  # unchanged rerun loads nothing
    assert read_answers(run_dir) == rows
    rerun = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert rerun == scores  # same scores: the first run's `created` is kept, so reports do not churn

    changed = FakeStages(tmp_path)
    runner.run(cfg, out_dir=run_dir, stages=changed.stages())  # same dir, same config: still cached
    assert changed.calls == []
    runner.run(
        make_cfg(tmp_path, tiny_questions, "run.variants=base", "model.max_new_tokens=7"),
        out_dir=run_dir,
        stages=changed.stages(),
    )
    assert changed.calls == ["base"] * 3  # answer-affecting change regenerates
    changed_scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert changed_scores["created"] != scores["created"]


def test_batched_generation_and_a_failing_batch(tmp_path: Path, tiny_questions: Path) -> None:
    cfg1 = make_cfg(tmp_path, tiny_questions, "run.variants=base,rag")
    single = runner.run(cfg1, out_dir=tmp_path / "one", stages=FakeStages(tmp_path).stages())
    cfg = make_cfg(tmp_path, tiny_questions, "run.variants=base,rag", "model.batch_size=2")
    fake = FakeStages(tmp_path)
    fake.batching = ([], "")
    run_dir = runner.run(cfg, out_dir=tmp_path / "two", stages=fake.stages())
    assert fake.batching[0] == [2, 2]  # per variant: a batch of 2, then the last question alone
    rows, singles = read_answers(run_dir), read_answers(single)
    assert [r["answer"] for r in rows] == [r["answer"] for r in singles]
    assert [r["latency"]["batch_size"] for r in rows] == [2, 2, 1, 2, 2, 1]
    assert rows[0]["latency"]["generation_ms"] == pytest.approx(20.0)  # batch time / batch size
    assert rows[3]["retrieved"][0]["chunk_id"] == "c1"  # retrieval stays per question

    poisoned = FakeStages(tmp_path)
    poisoned.batching = ([], "rio")  # q2 ("Junto a que rio...") breaks its batch
    run_dir = runner.run(
        make_cfg(tmp_path, tiny_questions, "run.variants=base", "model.batch_size=3"),
        out_dir=tmp_path / "poison",
        stages=poisoned.stages(),
    )
    rows = read_answers(run_dir)
    assert poisoned.batching[0] == [3]  # the batch failed, then each question went alone
    assert [r["error"] is None for r in rows] == [True, False, True]
    assert "poisoned question" in rows[1]["error"] and rows[0]["latency"]["batch_size"] == 1


def test_failed_question_is_recorded_then_retried(tmp_path: Path, tiny_questions: Path) -> None:
    cfg = make_cfg(tmp_path, tiny_questions, "run.variants=base")
    run_dir = runner.run(cfg, stages=FakeStages(tmp_path, fail_at=2).stages())
    rows = read_answers(run_dir)
    assert [r["error"] is not None for r in rows] == [False, True, False]
    assert "backend exploded" in rows[1]["error"] and rows[1]["metrics"]["f1"] == 0.0
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert scores["variants"]["base"]["failed"] == 1 and scores["variants"]["base"]["n"] == 3
    retry = FakeStages(tmp_path)
    runner.run(cfg, stages=retry.stages())
    assert retry.calls == ["base"]
    assert all(r["error"] is None for r in read_answers(run_dir))


def _numbered_questions(tmp_path: Path, n: int) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    qs = tmp_path / "q.jsonl"
    qs.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"Pergunta {i}?", "answers": ["x"]}) + "\n"
            for i in range(n)
        ),
        encoding="utf-8",
    )
    return qs


class _Flaky(FakeGenerator):
    """Raises ``errors[i]`` on the i-th call (None: answers)."""

    def __init__(self, errors: list[BaseException | None]) -> None:
        super().__init__("base", [])
        self.errors = errors

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation:
        i = len(self.log)
        self.log.append("base")
        exc = self.errors[i] if i < len(self.errors) else None
        if exc is not None:
            raise exc
        return Generation("Não sei.", 20, 3, 5.0, 40.0)


def _run_flaky(tmp_path: Path, n: int, errors: list[BaseException | None], *extra: str) -> Path:
    stages = FakeStages(tmp_path).stages()
    stages.make_generators = lambda cfg, adapter: {"base": _Flaky(errors)}
    cfg = make_cfg(tmp_path, _numbered_questions(tmp_path, n), "run.variants=base", *extra)
    return runner.run(cfg, out_dir=tmp_path / "run", stages=stages)


def test_consecutive_failures_stop_the_run_with_the_first_error(tmp_path: Path) -> None:
    errors: list[BaseException | None] = [
        TimeoutError("slow"),  # a streak of 1, broken by the answer after it
        None,
        ConnectionError("server down"),
        BackendError("HTTP 503 from server"),
        RuntimeError("CUDA out of memory"),
    ]
    with pytest.raises(
        BenchError, match=r"3 questions in a row failed; the first \(q2\): ConnectionError: server down"
    ):
        _run_flaky(tmp_path, 8, errors, "run.max_consecutive_errors=3")
    cached = (tmp_path / "run" / "cache" / "base.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(cached) == 5  # what was answered or failed before the stop is kept for the rerun


def test_scattered_failures_and_cap_zero_never_stop(tmp_path: Path) -> None:
    errors: list[BaseException | None] = [BackendError("x"), None] * 4
    rows = read_answers(_run_flaky(tmp_path, 8, errors, "run.max_consecutive_errors=2"))
    assert [r["error"] is not None for r in rows] == [True, False] * 4
    rows = read_answers(_run_flaky(tmp_path / "b", 6, [OSError("disk")] * 6, "run.max_consecutive_errors=0"))
    assert all("OSError: disk" in r["error"] for r in rows)


def test_a_user_error_for_one_question_stops_the_run_a_backend_error_does_not(tmp_path: Path) -> None:
    """The error hierarchy: a BenchError (the user's to fix) stops the run with its line; a BackendError
    (one request failed) becomes that question's error row."""
    with pytest.raises(BenchError, match="bad question file"):
        _run_flaky(tmp_path, 2, [BenchError("bad question file")])
    rows = read_answers(_run_flaky(tmp_path / "b", 2, [BackendError("HTTP 503"), None]))
    assert [r["error"] for r in rows] == ["BackendError: HTTP 503", None]


@pytest.mark.parametrize("bug", [TypeError("bad argument"), KeyError("text"), NotImplementedError("todo")])
def test_programming_errors_propagate_instead_of_error_rows(tmp_path: Path, bug: Exception) -> None:
    with pytest.raises(type(bug)):
        _run_flaky(tmp_path, 3, [None, bug])
    assert answer_loop.is_question_error(RuntimeError("engine")) and not answer_loop.is_question_error(bug)


def test_finish_reason_of_the_real_generation_reaches_the_rows(tmp_path: Path) -> None:
    class Capped(FakeGenerator):
        def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation:
            return Generation("Berlim é a", 20, max_new_tokens, 5.0, 40.0, finish_reason="length")

    stages = FakeStages(tmp_path).stages()
    stages.make_generators = lambda cfg, adapter: {"base": Capped("base", [])}
    cfg = make_cfg(tmp_path, _numbered_questions(tmp_path, 2), "run.variants=base")
    rows = read_answers(runner.run(cfg, out_dir=tmp_path / "run", stages=stages))
    assert [(r["finish_reason"], r["truncated"]) for r in rows] == [("length", True)] * 2


def test_every_question_failing_aborts(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"5 questions in a row failed; the first \(q0\): ConnectionError"):
        _run_flaky(tmp_path, 8, [ConnectionError("server down")] * 8)


def test_leakage_guard(tmp_path: Path, tiny_questions: Path) -> None:
    cfg = make_cfg(tmp_path, tiny_questions, "run.variants=base,ft")
    with pytest.raises(BenchError, match="leakage: 1 evaluation question"):
        runner.run(cfg, stages=FakeStages(tmp_path, leaked={"q3", "zz"}).stages())
    dev = make_cfg(tmp_path, tiny_questions, "run.variants=base,ft", "split=dev")
    assert runner.run(dev, stages=FakeStages(tmp_path, leaked={"q3"}).stages()).exists()


def test_split_and_limit(tmp_path: Path, tiny_questions: Path) -> None:
    assert [q["id"] for q in load_questions(make_cfg(tmp_path, tiny_questions, "split=dev"))] == [
        "q1",
        "q2",
    ]
    assert [q["id"] for q in load_questions(make_cfg(tmp_path, tiny_questions, "limit=1"))] == ["q1"]
    with pytest.raises(BenchError, match="no questions left"):
        load_questions(make_cfg(tmp_path, tiny_questions, "split=test"))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            '{"id": "a", "question": "Q?", "answers": ["x"]}\n\n{"id": "b", "question": \n',
            r"q\.jsonl:3: invalid JSON",
        ),
        ('{"id": "a", "question": "Q?", "answers": []}\n', r"q\.jsonl:1: .*answers"),
        (
            '{"id": "a", "question": "Q?", "answers": ["x"]}\n'
            '{"id": "a", "question": "R?", "answers": ["y"]}\n',
            r"q\.jsonl:2: duplicate question id",
        ),
        ('{"question": "Q?", "answers": ["x"]}\n', r"q\.jsonl:1: .*'id'"),
    ],
)
def test_bad_question_line_names_file_and_line(tmp_path: Path, content: str, match: str) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text(content, encoding="utf-8")
    with pytest.raises(BenchError, match=match):
        runner.run(make_cfg(tmp_path, qs, "run.variants=base"), stages=FakeStages(tmp_path).stages())


def test_oracle_needs_context_and_unknown_variant(tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text(json.dumps({"id": "a", "question": "Q?", "answers": ["x"]}) + "\n", encoding="utf-8")
    with pytest.raises(BenchError, match="oracle needs 'context'"):
        runner.run(make_cfg(tmp_path, qs, "run.variants=oracle"), stages=FakeStages(tmp_path).stages())
    with pytest.raises(BenchError, match="unknown variant 'nope'"):
        runner.run(make_cfg(tmp_path, qs, "run.variants=nope"), stages=FakeStages(tmp_path).stages())


def _real_cfg(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, questions: Path, variants: str, *extra: str
) -> Config:
    return load_config(
        "faquad",
        [
            f"model.name={tiny_model_dir}",
            "model.backend=transformers",
            "model.dtype=float32",
            "model.max_new_tokens=4",
            f"corpus={tiny_dump}",
            f"questions={questions}",
            f"results_dir={tmp_path / 'results'}",
            "split=",
            "index.embedder=hashing",
            "index.embedder_model=32",
            "index.chunk_tokens=64",
            "index.chunk_overlap=8",
            "finetune.max_steps=2",
            "finetune.batch_size=2",
            "finetune.max_length=64",
            "finetune.min_text_chars=10",
            "finetune.save_steps=2",
            "run.bootstrap_samples=50",
            f"run.variants={variants}",
            *extra,
        ],
    )


def _check_real_run(run_dir: Path, variants: list[str]) -> dict[str, Any]:
    rows = read_answers(run_dir)
    assert [(r["variant"], r["question_id"]) for r in rows] == [
        (v, q) for v in variants for q in ("q1", "q2", "q3")
    ]
    assert all(r["error"] is None and 0 < r["latency"]["new_tokens"] <= 4 for r in rows)
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert set(scores["variants"]) == set(variants)  # keys are sorted in the file
    assert scores["env"]["generator"]["base"]["backend"] == "transformers"
    assert scores["datasets"]["corpus"][0]["sha256"]
    return scores


def test_real_tiny_model_base_and_oracle(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, tiny_questions: Path
) -> None:
    cfg = _real_cfg(tmp_path, tiny_model_dir, tiny_dump, tiny_questions, "base,oracle")
    run_dir = runner.run(cfg)
    _check_real_run(run_dir, ["base", "oracle"])
    before = read_answers(run_dir)
    assert runner.run(cfg) == run_dir and read_answers(run_dir) == before  # cached, greedy: identical
    batched_cfg = _real_cfg(
        tmp_path, tiny_model_dir, tiny_dump, tiny_questions, "base,oracle", "model.batch_size=3"
    )
    batched = read_answers(runner.run(batched_cfg, out_dir=tmp_path / "batched"))
    assert [r["answer"] for r in batched] == [r["answer"] for r in before]  # left padding changes nothing
    assert {r["latency"]["batch_size"] for r in batched} == {3}


@pytest.mark.slow
def test_real_tiny_model_all_variants(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, tiny_questions: Path
) -> None:
    variants = ["base", "rag", "ft", "ft_rag", "oracle"]
    cfg = _real_cfg(tmp_path, tiny_model_dir, tiny_dump, tiny_questions, ",".join(variants))
    scores = _check_real_run(runner.run(cfg), variants)
    assert scores["variants"]["rag"]["recall@k"]["mean"] is not None
    assert set(scores["comparisons"]) == {"rag-base", "ft-base", "ft_rag-rag", "ft_rag-ft", "oracle-rag"}


class BlindRetriever(FakeRetriever):
    """The planted regression: retrieval "disabled" — it returns unrelated passages only."""

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        self.calls += 1
        return [Hit("cx", 99, "Outro", "", "Texto sem relação com a pergunta.", 0.1)]


def test_check_fails_on_planted_retrieval_regression(
    tmp_path: Path, tiny_questions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runner output is the baseline; the same run with retrieval disabled must fail `bench check`."""
    from bench.__main__ import main

    good = runner.run(
        make_cfg(tmp_path, tiny_questions), out_dir=tmp_path / "good", stages=FakeStages(tmp_path).stages()
    )
    same = runner.run(
        make_cfg(tmp_path, tiny_questions), out_dir=tmp_path / "same", stages=FakeStages(tmp_path).stages()
    )
    broken_stages = FakeStages(tmp_path)
    broken_stages.retriever = BlindRetriever()
    broken = runner.run(
        make_cfg(tmp_path, tiny_questions), out_dir=tmp_path / "broken", stages=broken_stages.stages()
    )
    baseline = str(good / "scores.json")

    assert main(["check", "--baseline", baseline, str(same)]) == 0
    capsys.readouterr()
    assert main(["check", "--baseline", baseline, str(broken)]) == 1
    out = capsys.readouterr().out
    assert "❌" in out and "recall@k" in out


def test_second_run_on_the_same_directory_is_refused(tmp_path: Path, tiny_questions: Path) -> None:
    from bench.eval.runstate import RunLock

    cfg = make_cfg(tmp_path, tiny_questions)
    out = tmp_path / "busy"
    with RunLock(out), pytest.raises(BenchError, match="another bench run is using this run directory"):
        runner.run(cfg, out_dir=out, stages=FakeStages(tmp_path).stages())
    assert not (out / "scores.json").exists()
    runner.run(cfg, out_dir=out, stages=FakeStages(tmp_path).stages())  # free again: the lock was released
    assert (out / "scores.json").exists()
