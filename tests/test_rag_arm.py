"""The prior baseline, the gold page as context, the RAG reading settings, counterfactual passages and the
selection/report subsets (issues 33 and 34)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from qdrant_client import QdrantClient

from bench.config import BenchError, load_config
from bench.core.schema import PROBED_BEFORE
from bench.eval import contexts, runner
from bench.eval.contexts import Reading
from bench.eval.train_answers import edit_passages, load_train_answers
from bench.questions.load import SELECTION_SHARE, subset_of, subset_rows
from bench.retrieval.bm25 import Bm25Encoder
from bench.retrieval.index import Hit
from bench.retrieval.store import EdgeStore, point_id
from bench.retrieval.store_server import ServerStore
from tests.test_runner import FakeStages, read_answers

REPO = Path(__file__).resolve().parent.parent


def _q(qid: str, split: str, relation: str, answer: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": qid,
        "question": kw.pop("question", f"Onde nasceu {qid}?"),
        "answers": [answer],
        "split": split,
        "relation": relation,
        **kw,
    }


def _questions(tmp_path: Path) -> Path:
    rows = [
        _q("t1", "train", "birth_place", "Porto"),
        _q("t2", "train", "birth_place", "Porto"),
        _q("t3", "train", "birth_place", "Braga"),
        _q("t4", "train", "birth_year", "1950", question="Em que ano nasceu t4?"),
        _q("t5", "train", "birth_year", "1960", question="Em que ano nasceu t5?"),
        _q("t6", "train", "birth_year", "1950", question="Em que ano nasceu t6?"),
        _q("d1", "dev", "birth_place", "Lisboa", title="Lisboa", article_id=4, context="Lisboa, 1900."),
        _q(
            "d2",
            "dev",
            "birth_year",
            "1960",
            question="Em que ano nasceu Lisboa?",
            title="Lisboa",
            article_id=4,
            context="Lisboa fica na foz do Tejo, 1960.",
        ),
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_prior_is_the_most_frequent_train_answer_of_the_relation(tmp_path: Path) -> None:
    cfg = load_config("default", [f"questions={_questions(tmp_path)}", "split=dev"])
    table = load_train_answers(cfg)
    assert table.table() == {"birth_place": "Porto", "birth_year": "1950"}
    assert table.prior({"relation": "birth_year"}) == "1950"
    # no relation: the wording says what type is asked
    assert table.prior({"question": "Em que ano nasceu X?"}) == "1950"
    # the run evaluates the train split: no prior from it (it would be the evaluated answers)
    assert load_train_answers(load_config("default", [f"questions={cfg.questions}", "split="])).counts == {}
    dev = {"id": "d2", "relation": "birth_year", "answers": ["1960"]}
    values = {load_train_answers(cfg).other_value(dev, seed) for seed in range(20)}
    assert values == {"1950"}  # never a gold answer (1960 is one)


def test_the_prior_reproduces_the_constant_guess_on_the_committed_study() -> None:
    """34 of the 900 dev questions: the figure the audit found by hand (issue 33)."""
    from bench.eval import scoring

    cfg = load_config("study")
    table = load_train_answers(cfg)
    rows = [json.loads(line) for line in (REPO / "questions" / "ptwiki-facts.jsonl").open(encoding="utf-8")]
    dev = [r for r in rows if r["split"] == "dev"]
    hits = sum(
        scoring.score_answer(table.prior(r), r["answers"], r["question"], question_row=r)["exact_match"]
        for r in dev
    )
    assert len(dev) == 900 and hits == 34
    assert table.prior({"relation": "birth_year"}) == "1982"


def test_counterfactual_edit_replaces_whole_words_only() -> None:
    passages = ({"title": "A", "section": "", "text": "Nasceu no Rio de Janeiro em 1962; 19620 não."},)
    out, n = edit_passages(passages, ["1962"], "1871")
    assert n == 1 and out[0]["text"] == "Nasceu no Rio de Janeiro em 1871; 19620 não."
    out, n = edit_passages(passages, ["Rio", "Rio de Janeiro"], "Belém")
    assert n == 1 and out[0]["text"].startswith("Nasceu no Belém em")  # the longest gold first
    assert edit_passages(passages, ["Porto"], "Belém")[1] == 0
    assert passages[0]["text"].endswith("19620 não.")  # the input is not modified


class PageRetriever:
    """Hits of two articles; ``article_id`` filters like the stores do."""

    HITS: ClassVar[list[Hit]] = [
        Hit("a-0", 1, "Outro", "", "Outro nasceu em 1900.", 0.9),
        Hit("b-0", 2, "Gold", "", "Gold nasceu em Lisboa.", 0.8),
        Hit("a-1", 1, "Outro", "Vida", "Outro morreu em 1990.", 0.7),
        Hit("b-1", 2, "Gold", "Vida", "Gold morreu em 1960.", 0.6),
    ]

    def search(
        self, query: str, k: int | None = None, mode: str | None = None, article_id: int | None = None
    ) -> list[Hit]:
        hits = [h for h in self.HITS if article_id is None or h.article_id == article_id]
        return hits[: k or 3]


def test_gold_page_page_only_and_passage_order() -> None:
    r = PageRetriever()
    row = {"id": "q", "question": "Onde nasceu Gold?", "article_id": 2, "title": "Gold"}
    gold = contexts.search(r, row, "gold_page", Reading(k=3), "oracle_page")
    assert [h.chunk_id for h in gold] == ["b-0", "b-1"]  # only the gold page, best first
    rag = contexts.search(r, row, "retrieval", Reading(k=3), "rag")
    assert [h.chunk_id for h in rag] == ["a-0", "b-0", "a-1"]
    last = contexts.search(r, row, "retrieval", Reading(k=3, order="best_last"), "rag")
    assert [h.chunk_id for h in last] == ["a-1", "b-0", "a-0"]
    page = contexts.search(r, row, "retrieval", Reading(k=3, page_only=True), "rag")
    assert [h.chunk_id for h in page] == ["a-0", "a-1"]  # the top hit's page, whatever the gold
    with pytest.raises(BenchError, match="article_id"):
        contexts.search(r, {"id": "x", "question": "?"}, "gold_page", Reading(), "oracle_page")
    with pytest.raises(BenchError, match="no chunk of article 7"):
        contexts.search(r, {**row, "article_id": 7}, "gold_page", Reading(), "oracle_page")
    with pytest.raises(BenchError, match="passage_order"):
        Reading(order="random")


@pytest.mark.parametrize("engine", ["edge", "server"])
def test_both_stores_filter_by_article(tmp_path: Path, engine: str) -> None:
    sig = {"embedder": "hashing", "embedder_model": "", "chunk_tokens": 50, "chunk_overlap": 10, "dim": 4}
    if engine == "edge":
        store: Any = EdgeStore(tmp_path / "idx")
    else:
        store = ServerStore(load_config("faquad", ["qdrant_url=:memory:"]), QdrantClient(":memory:"))
    store.open(sig, 4)
    bm = Bm25Encoder()
    texts = ["Lisboa capital", "Lisboa rio Tejo", "Porto rio Douro", "Porto Lisboa comboio"]
    arts = [1, 1, 2, 2]
    store.upsert(
        [point_id(a, i) for i, a in enumerate(arts)],
        np.eye(4, dtype=np.float32),
        [bm.document(t) for t in texts],
        [
            {"chunk_id": f"{a}-{i}", "article_id": a, "title": f"T{a}", "section": "", "text": t}
            for i, (a, t) in enumerate(zip(arts, texts, strict=True))
        ],
    )
    q, sq = np.array([1.0, 0.9, 0.1, 0.8], dtype=np.float32), bm.query("Lisboa")
    for mode in ("dense", "sparse", "hybrid"):
        everything = store.query(q, sq, mode, 4)
        only = store.query(q, sq, mode, 4, article_id=2)
        assert {p["article_id"] for _, p in everything} == {1, 2}, mode
        assert only and {p["article_id"] for _, p in only} == {2}, mode
    store.close()


def test_subsets_split_by_page_and_are_disjoint() -> None:
    rows = [json.loads(line) for line in (REPO / "questions" / "ptwiki-facts.jsonl").open(encoding="utf-8")]
    dev = [r for r in rows if r["split"] == "dev"]
    sel, rep = subset_rows(dev, "selection"), subset_rows(dev, "report")
    assert len(sel) + len(rep) == len(dev) and not {r["id"] for r in sel} & {r["id"] for r in rep}
    assert not {r["title"] for r in sel} & {r["title"] for r in rep}  # one page, one side
    assert len(sel) >= 60 and len(rep) >= 800  # the sizes, on the committed questions
    assert abs(len({r["title"] for r in sel}) / len({r["title"] for r in dev}) - SELECTION_SHARE) < 0.05
    assert subset_of(dev[0]) == subset_of({**dev[0], "id": "another"})  # the page decides, not the id
    with pytest.raises(BenchError, match="subset"):
        subset_rows(dev, "test")
    cfg = load_config("default", ["subset=report", "limit=120"])
    assert cfg.subset == "report"
    with pytest.raises(BenchError, match="subset"):
        load_config("default", ["subset=nope"])


def test_run_with_prior_gold_page_and_counterfactual(tmp_path: Path) -> None:
    path = _questions(tmp_path)
    cfg = load_config(
        "default",
        [
            f"questions={path}",
            f"results_dir={tmp_path / 'results'}",
            f"corpus={tmp_path / 'missing.xml'}",
            "split=dev",
            "limit=0",
            "run.bootstrap_samples=100",
            "model.batch_size=1",
            "run.variants=base,rag,oracle_page,rag_cf,echo,prior",
        ],
    )
    fake = FakeStages(tmp_path)
    run_dir = runner.run(cfg, stages=fake.stages())
    rows = {(r["variant"], r["question_id"]): r for r in read_answers(run_dir)}
    assert rows["prior", "d1"]["answer"] == "Porto" and rows["prior", "d2"]["answer"] == "1950"
    # oracle_page: only article 4's chunks (the fake retriever's Lisboa passages)
    assert {p["title"] for p in rows["oracle_page", "d1"]["passages"]} == {"Lisboa"}
    assert rows["oracle_page", "d1"]["metrics"]["recall@k"] is None  # no search of the whole index
    cf = rows["rag_cf", "d1"]
    assert cf["counterfactual"]["value"] in {"Porto", "Braga"} and cf["counterfactual"]["replaced"] >= 1
    assert not any("Lisboa" in p["text"] for p in cf["passages"])
    assert "counterfactual" not in rows["rag", "d1"]
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert set(scores["baseline_checks"]["base"]["strongest"].values()) <= {"echo", "prior"}
    assert "base-prior" in scores["comparisons"] and "oracle_page-rag" in scores["comparisons"]
    # the reading settings re-key the retrieval variants only
    again = runner.run(cfg.__class__(**{**cfg.__dict__}), stages=fake.stages())
    assert again == run_dir
    counts = Counter(r["variant"] for r in read_answers(run_dir))
    assert counts == {v: 2 for v in ("base", "rag", "oracle_page", "rag_cf", "echo", "prior")}


def test_holm_adjusts_and_keeps_order() -> None:
    from bench.core.stats import holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.2, 0.9, 0.01, 0.5]) == pytest.approx(
        [0.6, 1.0, 0.04, 1.0]
    )  # 0.9 × 1 lifted to 1.0: monotone


def test_rag_sweep_chooses_on_selection_and_reports_on_report(tmp_path: Path) -> None:
    from bench.eval import rag_sweep

    rows = [
        _q(f"d{i}", "dev", "birth_place", "Lisboa", title=f"Página {i}", article_id=4, context="Lisboa.")
        for i in range(60)
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    sets = [f"questions={path}", f"results_dir={tmp_path / 'results'}", f"corpus={tmp_path / 'x.xml'}",
            "run.bootstrap_samples=50", "model.batch_size=1"]  # fmt: skip
    fake = FakeStages(tmp_path)
    root = rag_sweep.run_rag_sweep("default", sets, "rs", report_limit=10, stages=fake.stages())
    out = json.loads((root / "settings.json").read_text(encoding="utf-8"))
    names = [rag_sweep.point_name(p) for p in rag_sweep.points()]
    assert len(names) == 13 == len(set(names)) and out["reference"] == "k3-first"
    assert "k1-first-page" not in names  # the same passage as k1-first
    n_sel = sum(subset_of(r) == "selection" for r in rows)
    assert out["selection"]["n"] == n_sel and out["report"]["n"] == 10
    assert set(out["selection"]["points"]) == set(names) == set(out["report"]["points"])
    # the fake reader quotes the first passage: "Lisboa fica na foz do Tejo." never equals "Lisboa"
    assert out["chosen"] == "k3-first"  # all tied: the profile's own setting
    assert all("p_holm" in r for n, r in out["report"]["points"].items() if n != "k3-first")
    assert (root / "selection-k5-last-page" / "answers.jsonl").exists()
    assert fake.loaded == 1  # one engine for the 26 runs
    calls = len(fake.calls)
    rag_sweep.run_rag_sweep("default", sets, "rs", report_limit=10, stages=fake.stages())
    assert len(fake.calls) == calls  # a rerun answers nothing again


def test_rescore_adds_the_prior_from_the_run_s_own_question_file(tmp_path: Path) -> None:
    from bench.eval import rescore
    from bench.io import atomic_write_json, iter_jsonl, sha256_file, write_jsonl

    qpath = _questions(tmp_path)
    rows = [
        {"variant": v, "question_id": qid, "question": q, "answer": a, "answers": golds,
         "groups": {"relation": rel}, "passages": [], "retrieved": [], "metrics": {}, "error": None,
         "latency": {"retrieval_ms": 0.0, "generation_ms": 5.0, "ttft_ms": 1.0, "new_tokens": 2}}
        for v, a in (("base", "Porto"), ("echo", "?"))
        for qid, q, golds, rel in (("d1", "Onde nasceu d1?", ["Porto"], "birth_place"),
                                   ("d2", "Em que ano nasceu d2?", ["1960"], "birth_year"))
    ]  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_jsonl(run_dir / "answers.jsonl", rows)
    config = {"questions": str(qpath), "split": "dev", "seed": 0, "run": {"bootstrap_samples": 50}}
    datasets = {"questions": {"sha256": sha256_file(qpath)}}
    atomic_write_json(run_dir / "scores.json", {"config": config, "datasets": datasets, "variants": {}})
    out = rescore.rescore(run_dir)
    assert out["added"] == ["prior"]
    prior = {
        r["question_id"]: r["answer"]
        for r in iter_jsonl(run_dir / "answers.jsonl")
        if r["variant"] == "prior"
    }
    assert prior == {"d1": "Porto", "d2": "1950"}
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert scores["variants"]["prior"]["exact_match"]["mean"] == 0.5
    assert "base-prior" in scores["comparisons"]
    # a question file that changed since the run: no prior (it would not be the run's train answers)
    atomic_write_json(run_dir / "scores.json", {"config": config, "datasets": {"questions": {"sha256": "x"}}})
    write_jsonl(run_dir / "answers.jsonl", rows)
    assert rescore.rescore(run_dir)["added"] == []


def test_rag_settings_block_renders_from_its_json(tmp_path: Path) -> None:
    from bench.reporting import rag_settings

    def pt(em: float, diff: float, p: float, holm: float) -> dict[str, Any]:
        return {"em": em, "ci95": [em - 0.1, em + 0.1], "n": 100, "diff": diff, "b10": 3, "b01": 9,
                "p_value": p, "p_holm": holm, "significant_holm": holm < 0.05}  # fmt: skip

    doc = {
        "profile": "default", "variant": "rag", "reference": "k3-first", "chosen": "k1-first",
        "selection": {"n": 89, "points": {"k3-first": pt(0.5, 0, 1, 1),
                                          "k1-first": pt(0.6, 0.1, 0.01, 0.02)}},
        "report": {"n": 120, "points": {"k3-first": pt(0.55, 0, 1, 1),
                                        "k1-first": pt(0.4, -0.15, 0.001, 0.004)}},
        "chosen_on_report": {"em": 0.4, "diff": -0.15, "b10": 3, "b01": 9, "p_value": 0.001, "n": 120},
        "worse_on_report": ["k1-first"],
    }  # fmt: skip
    (tmp_path / "settings.json").write_text(json.dumps(doc), encoding="utf-8")
    text = rag_settings.render(tmp_path)
    assert "**k1-first** (chosen)" in text and "n = 89" in text and "n = 120" in text
    assert "-0.150 against the reference" in text and "after Holm: k1-first." in text
    assert "0.600 [0.50, 0.70]" in text


def test_latency_is_timed_one_question_at_a_time_beside_throughput(tmp_path: Path) -> None:
    path = _questions(tmp_path)
    cfg = load_config(
        "default",
        [f"questions={path}", f"results_dir={tmp_path / 'results'}", f"corpus={tmp_path / 'missing.xml'}",
         "split=dev", "limit=0", "run.bootstrap_samples=50", "model.batch_size=2", "run.latency_probe=1",
         "run.variants=base,rag,echo"],
    )  # fmt: skip
    fake = FakeStages(tmp_path)
    run_dir = runner.run(cfg, stages=fake.stages())
    # per variant: an untimed first request, 1 timed probe (both before the batch), the batch of 2
    assert Counter(fake.calls) == {"base": (1 + 1 + 2) * 2}
    v = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))["variants"]
    for name in ("base", "rag"):
        assert v[name]["single_latency_ms"]["n"] == 1 and v[name]["single_latency_ms"]["p50"] > 0
        assert v[name]["single_latency_ms"]["when"] == PROBED_BEFORE
        assert v[name]["throughput"]["n"] == 2 and v[name]["throughput"]["questions_per_s"] > 0
    assert "single_latency_ms" not in v["echo"] and "throughput" not in v["echo"]


def test_oracle_page_reads_only_the_gold_page_of_unseen_pages_among_namesakes(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The real stack (transformers backend, embedded Qdrant, hashing embedder) on invented pages nobody has
    seen, each with a namesake page that repeats its name: oracle_page's passages come from the gold page
    only, while RAG's also come from the namesakes."""
    from tests.conftest import make_dump

    people = [("Teodora Prates", "Vila Serena", "1871"), ("Bernardo Quintela", "Campos Altos", "1902"),
              ("Iolanda Sarzedo", "Fontelinda", "1931")]  # fmt: skip
    pages, rows = [], []
    for i, (name, place, year) in enumerate(people):
        lead = f"'''{name}''' ({place}, {year}) foi uma pessoa inventada. " + "Viveu e trabalhou. " * 40
        pages.append(
            {"title": name, "id": 10 + i, "text": lead + "\n\n== Vida ==\n" + "Escreveu livros. " * 40}
        )
        namesake = f"'''{name} Filho''' foi filho de {name}, nascido em Porto Azul. " + "Nada mais. " * 30
        pages.append({"title": f"{name} Filho", "id": 20 + i, "text": namesake})
        rows.append(
            {
                "id": f"q{i}",
                "question": f"Onde nasceu {name}?",
                "answers": [place],
                "title": name,
                "article_id": 10 + i,
                "context": lead[:80],
                "split": "dev",
                "relation": "birth_place",
            }
        )
    dump = tmp_path / "pessoas.xml"
    dump.write_text(make_dump(pages), encoding="utf-8")
    qpath = tmp_path / "q.jsonl"
    qpath.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = load_config("faquad", [
        f"model.name={tiny_model_dir}", "model.backend=transformers", "model.dtype=float32",
        "model.max_new_tokens=4", "model.batch_size=1", f"corpus={dump}", f"questions={qpath}",
        f"results_dir={tmp_path / 'results'}", "split=", "index.embedder=hashing", "index.embedder_model=32",
        "index.chunk_tokens=48", "index.chunk_overlap=8", "index.k=3", "run.bootstrap_samples=20",
        "run.latency_probe=0", "run.variants=rag,oracle_page"])  # fmt: skip
    run_dir = runner.run(cfg)
    rows_out = read_answers(run_dir)
    gold = {r["id"]: r["title"] for r in rows}
    page_rows = [r for r in rows_out if r["variant"] == "oracle_page"]
    assert len(page_rows) == 3 and all(r["error"] is None for r in page_rows)
    for r in page_rows:
        titles = [p["title"] for p in r["passages"]]
        assert len(titles) == 3 and set(titles) == {gold[r["question_id"]]}, (
            titles
        )  # k chunks, gold page only
    rag_titles = {p["title"] for r in rows_out if r["variant"] == "rag" for p in r["passages"]}
    assert any(t.endswith("Filho") for t in rag_titles)  # the namesakes do compete in RAG
