"""``bench export``: the Hugging Face dataset loads with ``datasets.load_dataset`` (questions, a run's
answers, licence and provenance in its card), and the lm-eval task folder runs under the real
lm-evaluation-harness on a tiny local model, offline, its EM/F1 equal to the bench's own scorer on the same
generated answers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import datasets
import pytest

from bench.__main__ import main
from bench.config import load_config
from bench.core.prompts import first_line
from bench.eval.scoring import score_answer
from bench.export.hf import export
from bench.export.lm_eval_task import task_doc
from bench.io import iter_jsonl

REPO = Path(__file__).resolve().parents[1]
SMOKE_RUN = REPO / "results" / "runs" / "smoke"
METRICS = ("exact_match", "f1", "f1_qstripped", "contains")


def ours(answer: str, doc: dict[str, Any]) -> dict[str, float]:
    scores = score_answer(answer, doc["answers"], doc["question"], question_row=doc)
    return {m: scores[m] for m in METRICS}


@pytest.mark.timeout(120)
def test_export_loads_with_datasets_with_licence_and_provenance(tmp_path: Path) -> None:
    out = tmp_path / "export"
    argv = ["export", "--profile", "smoke", "--set", f"questions={REPO / 'questions/smoke.jsonl'}"]
    assert main([*argv, "--run", str(SMOKE_RUN), "-o", str(out)]) == 0
    questions = datasets.load_dataset(str(out / "hf"), "questions")
    rows = list(iter_jsonl(REPO / "questions/smoke.jsonl"))
    assert {s: questions[s].num_rows for s in questions} == {"dev": 6, "train": 14}
    got = {r["id"]: r for s in questions for r in questions[s]}
    assert {r["id"]: r["answers"] for r in rows} == {i: r["answers"] for i, r in got.items()}
    assert all(got[r["id"]]["context"] == r["context"] for r in rows)
    answers = datasets.load_dataset(str(out / "hf"), "answers")
    (split,) = answers
    exported = list(answers[split])
    run_rows = list(iter_jsonl(SMOKE_RUN / "answers.jsonl"))
    assert len(exported) == len(run_rows) == 220
    assert [(r["variant"], r["question_id"], r["answer"]) for r in exported] == [
        (r["variant"], r["question_id"], r["answer"]) for r in run_rows
    ]
    assert [r["exact_match"] for r in exported] == [r["metrics"]["exact_match"] for r in run_rows]
    card = (out / "hf" / "README.md").read_text(encoding="utf-8")
    assert "\nlicense: cc-by-4.0\n" in card and "FaQuAD" in card and "Sayama" in card  # the attribution
    scores = json.loads((SMOKE_RUN / "scores.json").read_text(encoding="utf-8"))
    assert scores["config_hash"] in card and scores["datasets"]["questions"]["sha256"] in card
    assert main([*argv, "--run", str(REPO / "results/runs/default"), "-o", str(out)]) == 2  # other questions


@pytest.mark.timeout(120)
def test_the_licence_follows_the_question_file(tmp_path: Path) -> None:
    facts = export(load_config("default", ["limit=5"]), tmp_path / "facts")
    card = (tmp_path / "facts" / "hf" / "README.md").read_text(encoding="utf-8")
    assert facts["licence"] == "cc-by-sa-4.0" and "\nlicense: cc-by-sa-4.0\n" in card
    assert "curid=ARTICLE_ID&action=history" in card  # how to find each page's authors
    assert datasets.load_dataset(str(tmp_path / "facts" / "hf"), "questions")["dev"].num_rows == 5
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"id": "x", "question": "Q?", "answers": ["azul"]}) + "\n", encoding="utf-8")
    unknown = export(load_config("smoke", [f"questions={mine}"]), tmp_path / "mine")
    text = (tmp_path / "mine" / "hf" / "README.md").read_text(encoding="utf-8")
    assert unknown["licence"] == "other" and "Unknown: no NOTICE.md" in text
    assert unknown["tasks"] == ["ptwiki_bench_mine_closed_book"]  # no gold context: no with-context task


def load_utils(folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"utils_{abs(hash(folder))}", folder / "utils.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(180)
def test_the_task_folder_scores_like_the_bench(tmp_path: Path) -> None:
    """The metric code the task folder carries gives the bench's scores on every answer of the committed
    default run (ptwiki facts: place questions with qualified golds included)."""
    cfg = load_config("default")
    export(cfg, tmp_path / "x")
    utils = load_utils(tmp_path / "x" / "lm_eval")
    docs = {d["id"]: d for d in iter_jsonl(tmp_path / "x" / "lm_eval" / "questions.jsonl")}
    rows = list(iter_jsonl(REPO / "results/runs/default/answers.jsonl"))
    assert len(rows) > 2000 and sum(d["place"] for d in docs.values()) > 50
    questions = {q["id"]: q for q in iter_jsonl(REPO / "questions/ptwiki-facts.jsonl")}
    differ = [
        r["question_id"]
        for r in rows
        if utils.score(r["answer"], docs[r["question_id"]]) != ours(r["answer"], questions[r["question_id"]])
    ]
    assert differ == []
    # the place rule matters here: without the document's place flag some answers score otherwise
    plain = [r for r in rows if utils.score(r["answer"], {**docs[r["question_id"]], "place": False})
             != ours(r["answer"], questions[r["question_id"]])]  # fmt: skip
    assert plain, "no answer exercised the place rule"
    for text in ("Resposta: Lisboa\nmais", "\n\n  Berlim  \n", "", "Resposta:"):
        assert utils.first_line(text) == first_line(text)


def run_lm_eval(folder: Path, model: Path, tasks: list[str], out: Path) -> dict[str, Any]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model},dtype=float32,device=cpu",
        tasks=tasks,
        task_manager=TaskManager(include_path=str(folder)),
        batch_size=4,
        log_samples=True,
    )
    assert results is not None
    out.write_text(json.dumps(results["samples"], ensure_ascii=False, default=str), encoding="utf-8")
    return results


def parrot_model(src: Path, dst: Path) -> str:
    """The tiny random model rewired to answer one word, then end the line, whatever the prompt: attention and
    MLP outputs zeroed (the next token depends on the last one only), every token's embedding points to the
    word, the word's own embedding to the line break. Returns the word (one token of the tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    words = [t for t in tok.get_vocab() if t.startswith("Ġ") and t[1:].isalpha() and len(t) > 4]
    word = max(sorted(words), key=len)
    word_id, newline_id = tok.convert_tokens_to_ids(word), tok.encode("\n")[0]
    model.config.tie_word_embeddings = False  # the tiny model ties them: the head gets its own weights
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        emb.zero_()
        emb[:, 0] = 1.0
        emb[word_id] = 0.0
        emb[word_id, 1] = 1.0
        model.model.norm.weight.fill_(1.0)
        head.zero_()
        head[word_id, 0] = 10.0
        head[newline_id, 1] = 10.0
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    return str(tok.decode([word_id])).strip()


@pytest.mark.timeout(300)  # ~25 s on 2 busy cores (lm_eval's import and the tiny model included)
def test_lm_eval_runs_the_exported_tasks_with_our_scores(tmp_path: Path, tiny_model_dir: Path) -> None:
    """lm_eval (offline, a tiny local model) runs both tasks; each logged sample's EM/F1 equals the bench's
    scorer on that sample's answer, and so do the aggregates. The model always answers one word, which is
    the gold answer of half the questions: the equality is checked on right and wrong answers."""
    word = parrot_model(tiny_model_dir, tmp_path / "parrot")
    rows = [r for r in iter_jsonl(REPO / "questions/smoke.jsonl")][:8]
    for r in rows[::2]:
        r["answers"] = [word]
    for r in rows[1::4]:
        r["answers"] = [f"{word} de ouro"]  # partly right: F1 between 0 and 1, EM 0
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = load_config("smoke", [f"questions={questions}"])
    names = export(cfg, tmp_path / "export")["tasks"]
    assert names == ["ptwiki_bench_q_closed_book", "ptwiki_bench_q_context"]
    results = run_lm_eval(
        tmp_path / "export" / "lm_eval", tmp_path / "parrot", names, tmp_path / "samples.json"
    )
    by_id = {r["id"]: task_doc(r) for r in rows}
    for task in names:
        samples = results["samples"][task]
        assert len(samples) == 8 and {first_line(s["filtered_resps"][0]) for s in samples} == {word}
        for s in samples:
            want = ours(first_line(s["filtered_resps"][0]), by_id[s["doc"]["id"]])
            assert {m: s[m] for m in METRICS} == want, (task, s["doc"]["id"])
        for m in METRICS:
            mean = sum(s[m] for s in samples) / len(samples)
            assert results["results"][task][f"{m},none"] == pytest.approx(mean)
        assert results["results"][task]["exact_match,none"] == pytest.approx(0.5)
        assert 0.5 < results["results"][task]["f1,none"] < 1.0  # the two "word de ouro" golds: F1 2/3


def test_export_needs_a_run_with_answers(tmp_path: Path) -> None:
    assert main(["export", "--profile", "smoke", "--run", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_the_task_folder_imports_no_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export(load_config("smoke"), tmp_path)
    folder = tmp_path / "lm_eval"
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "from bench" not in text and "import bench" not in text, path
    monkeypatch.setitem(sys.modules, "bench", None)  # `import bench` would now fail
    for name in ("ptwiki_metrics", "ptwiki_numbers_pt"):  # loaded afresh from this folder
        monkeypatch.delitem(sys.modules, name, raising=False)
    utils = load_utils(folder)
    doc = {"question": "Onde nasceu Ana?", "answers": ["Olinda"], "place": True}
    assert utils.score("Olinda, Pernambuco", doc)["exact_match"] == 1.0
    assert utils.score("Olinda, Pernambuco", {**doc, "place": False})["exact_match"] == 0.0
    assert utils.score("mil e quinhentos", {**doc, "answers": ["1.500"]})["exact_match"] == 1.0
