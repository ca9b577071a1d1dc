"""Error attribution of passage-reading variants, EM by distractor passages, counterfactual faithfulness, and
their report tables (bench.eval.attribution, bench.eval.faithfulness, bench.reporting.diagnostics_tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.core import stats
from bench.eval import attribution as attr
from bench.eval import faithfulness as faith
from bench.eval import rescore, scoring
from bench.eval.diagnostics import reader_diagnostics
from bench.io import atomic_write_json, read_json, write_jsonl
from bench.reporting import report
from bench.reporting.diagnostics_tables import render_diagnostics

# Invented people and places.
GOLD = "Ana Lima"
LEAD = "Ana Lima (Vila Serena, 2 de maio de 1871 — Porto Azul, 9 de julho de 1940) foi uma pintora inventada."
GOLD_CHUNK = "Em 1899, Ana Lima mudou-se para Fontelinda, onde abriu um ateliê."
OTHER = "Bruno Costa (Campos Altos, 1902 — São Tomé das Letras, 1960) foi um escritor inventado."
QUESTIONS = {
    "birth_place": ("Onde nasceu Ana Lima?", "Vila Serena"),
    "death_place": ("Onde morreu Ana Lima?", "Porto Azul"),
    "birth_year": ("Em que ano nasceu Ana Lima?", "1871"),
    "death_year": ("Em que ano morreu Ana Lima?", "1940"),
}
THREE = [(GOLD, LEAD), (GOLD, GOLD_CHUNK), ("Bruno Costa", OTHER)]


def row(
    answer: str,
    relation: str = "birth_place",
    passages: list[tuple[str, str]] | None = None,
    *,
    variant: str = "rag",
    qid: str = "q",
    error: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An answers.jsonl row scored by the real scoring (so "wrong" means what it means there)."""
    question, gold = QUESTIONS[relation]
    texts = THREE if passages is None else passages
    metrics = scoring.score_answer(
        answer, [gold], question, question_row={"relation": relation}, failed=bool(error)
    )
    return {
        "variant": variant,
        "question_id": qid,
        "question": question,
        "answer": answer,
        "answers": [gold],
        "gold_title": GOLD,
        "groups": {"relation": relation},
        "passages": [{"title": t, "section": "", "text": x} for t, x in texts],
        "metrics": metrics,
        "error": error,
        "finish_reason": "stop",
        "truncated": False,
        "latency": {
            "retrieval_ms": 1.0,
            "generation_ms": 5.0,
            "ttft_ms": 1.0,
            "new_tokens": 2,
            "batch_size": 1,
        },
        **extra,
    }


@pytest.mark.parametrize(
    ("answer", "relation", "passages", "expected", "positions"),
    [
        ("", "birth_place", None, attr.EMPTY, ()),
        (" — ", "birth_place", None, attr.EMPTY, ()),
        ("Vila Serena, 2 de maio de 1871", "birth_place", None, attr.RIGHT_PLUS_EXTRA, ()),
        ("2 de maio de 1871", "birth_year", None, attr.RIGHT_PLUS_EXTRA, ()),
        ("Vila Serena", "birth_year", None, attr.FORMAT, ()),  # a place for a year
        ("9 de julho", "birth_place", None, attr.FORMAT, ()),  # a date for a place
        ("Campos Altos", "birth_place", [("Bruno Costa", OTHER)], attr.RETRIEVAL_MISS, (1,)),
        ("Porto Azul", "birth_place", None, attr.OTHER_SLOT, (1,)),  # death place for birth place
        ("Vila Serena", "death_place", None, attr.OTHER_SLOT, (1,)),
        ("1940", "birth_year", None, attr.OTHER_SLOT, (1,)),
        ("9 de julho de 1940", "birth_year", None, attr.OTHER_SLOT, (1,)),  # the other year, with its date
        ("1871", "death_year", None, attr.OTHER_SLOT, (1,)),
        ("Fontelinda", "birth_place", None, attr.GOLD_PAGE_OTHER_VALUE, (2,)),
        ("1899", "death_year", None, attr.GOLD_PAGE_OTHER_VALUE, (2,)),
        ("Campos Altos", "birth_place", None, attr.OTHER_PAGE, (3,)),
        ("sao tome das letras", "death_place", None, attr.OTHER_PAGE, (3,)),  # accents and case folded
        ("1902", "birth_year", None, attr.OTHER_PAGE, (3,)),
        ("Lisboa", "birth_place", None, attr.NOT_IN_PASSAGES, ()),
        ("2076", "birth_year", None, attr.NOT_IN_PASSAGES, ()),  # an impossible year is a wrong year
    ],
)
def test_each_class(
    answer: str,
    relation: str,
    passages: list[tuple[str, str]] | None,
    expected: str,
    positions: tuple[int, ...],
) -> None:
    r = row(answer, relation, passages)
    assert attr.is_wrong(r)
    found = attr.classify(r)
    assert found.cls == expected
    assert found.positions == positions


def test_right_answers_and_failures_are_not_attributed() -> None:
    assert not attr.is_wrong(row("Vila Serena"))
    assert not attr.is_wrong(row("Vila Serena, Brasil"))  # the place rule makes it exact
    assert not attr.is_wrong(row("Lisboa", error="timeout"))


def test_value_in_the_gold_page_and_another_page_counts_as_the_gold_page() -> None:
    shared = [(GOLD, LEAD), (GOLD, "Ana Lima expôs em Campos Altos."), ("Bruno Costa", OTHER)]
    found = attr.classify(row("Campos Altos", passages=shared))
    assert (found.cls, found.positions) == (attr.GOLD_PAGE_OTHER_VALUE, (2, 3))


def test_other_slot_needs_the_gold_lead_from_the_oracle_rows_or_the_question_file() -> None:
    chunk_only = [(GOLD, GOLD_CHUNK), ("Bruno Costa", OTHER)]  # no life span among the passages read
    rag = row("Porto Azul", passages=chunk_only)
    assert attr.classify(rag).cls == attr.NOT_IN_PASSAGES
    oracle = row("Vila Serena", passages=[(GOLD, LEAD)], variant="oracle")
    out = attr.attribution({"rag": [rag], "oracle": [oracle]})
    assert out["rag"]["classes"][attr.OTHER_SLOT]["count"] == 1
    out = attr.attribution({"rag": [rag]}, contexts={"q": LEAD})
    assert out["rag"]["classes"][attr.OTHER_SLOT]["count"] == 1


def test_other_slot_value_reads_the_life_span() -> None:
    assert attr.life_span(LEAD) == ("Vila Serena, 2 de maio de 1871", "Porto Azul, 9 de julho de 1940")
    assert attr.other_slot_value("birth_place", LEAD) == "Porto Azul"
    assert attr.other_slot_value("death_year", LEAD) == "1871"
    living = "Rui Prates (Monte Claro, 1962) é um músico inventado."
    assert attr.other_slot_value("birth_year", living) is None  # no death side
    assert attr.other_slot_value("municipality_state", LEAD) is None  # no pair


def test_em_by_distractors_groups_by_passages_from_other_pages() -> None:
    other = ("Bruno Costa", OTHER)
    rows = [
        row("Vila Serena", passages=[(GOLD, LEAD)] * 3),
        row("Porto Azul", passages=[(GOLD, LEAD)] * 3),
        row("Vila Serena", passages=[(GOLD, LEAD), (GOLD, GOLD_CHUNK), other]),
        row("Lisboa", passages=[(GOLD, LEAD), other, other]),
        row("Vila Serena", passages=[(GOLD, LEAD), other, other], error="boom"),  # a failure counts 0
    ]
    out = attr.em_by_distractors(rows)
    assert list(out) == ["0", "1", "2"]
    assert out["0"] == stats.rate_ci([1.0, 0.0])
    assert out["1"]["mean"] == 1.0 and out["1"]["n"] == 1
    assert out["2"] == stats.rate_ci([0.0, 0.0])


def test_attribution_per_variant_counts_shares_and_positions() -> None:
    rows = [
        row("Vila Serena", qid="a"),
        row("Campos Altos", qid="b"),
        row("Fontelinda", qid="c"),
        row("1902", "birth_year", qid="d"),
        row("Vila Serena, 2 de maio de 1871", qid="e"),
    ]
    cf = {"value": "Monte Claro", "replaced": 1}
    out = attr.attribution(
        {
            "rag": rows,
            "span_rag": [{**r, "variant": "span_rag"} for r in rows],  # a no-model baseline: not a reader
            "base": [{**r, "variant": "base", "passages": []} for r in rows],  # closed book
            "rag_cf": [{**r, "variant": "rag_cf", "counterfactual": cf} for r in rows],  # edited on purpose
            "new_reader": [{**r, "variant": "new_reader"} for r in rows],  # unknown name: judged by its rows
        }
    )
    assert set(out) == {"rag", "new_reader"}
    rag = out["rag"]
    assert (rag["n"], rag["wrong"], rag["failed"]) == (5, 4, 0)
    counts = {c: v["count"] for c, v in rag["classes"].items() if v["count"]}
    assert counts == {attr.OTHER_PAGE: 2, attr.GOLD_PAGE_OTHER_VALUE: 1, attr.RIGHT_PLUS_EXTRA: 1}
    assert sum(v["share"] for v in rag["classes"].values()) == pytest.approx(1.0)
    assert rag["positions"] == {"with_value": 3, "in": {"2": 1, "3": 2}, "only": {"2": 1, "3": 2}}
    assert rag["em_by_distractors"]["1"] == stats.rate_ci([1.0, 0.0, 0.0, 0.0, 0.0])


def cf_row(answer: str, value: str | None, replaced: int = 2, **kw: Any) -> dict[str, Any]:
    extra = {} if value is None else {"counterfactual": {"value": value, "replaced": replaced}}
    return row(answer, variant="rag_cf", **extra, **kw)


def test_faithfulness_rates() -> None:
    rows = [
        cf_row("Monte Claro", "Monte Claro"),
        cf_row("Monte Claro, Brasil", "Monte Claro"),  # the place rule, as in scoring
        cf_row("Vila Serena", "Monte Claro"),
        cf_row("Lisboa", "Monte Claro"),
        cf_row("Monte Claro", "Monte Claro", error="boom"),  # a failure follows neither
        cf_row("Monte Claro", "Monte Claro", replaced=0),  # nothing replaced: no conflict
        cf_row("Vila Serena", "vila serena"),  # the "counterfactual" is the gold: no conflict
        cf_row("Vila Serena", None),  # no record
    ]
    out = faith.faithfulness({"rag_cf": rows, "rag": [row("Vila Serena")]})
    assert set(out) == {"rag_cf"}
    body = out["rag_cf"]
    assert (body["n"], body["skipped"]) == (5, 3)
    assert body["follows_context"] == stats.rate_ci([1.0, 1.0, 0.0, 0.0, 0.0])
    assert body["follows_memory"] == stats.rate_ci([0.0, 0.0, 1.0, 0.0, 0.0])
    assert body["neither"] == stats.rate_ci([0.0, 0.0, 0.0, 1.0, 1.0])


def test_diagnostics_keys_only_when_there_is_something() -> None:
    assert reader_diagnostics({"base": [{**row("Lisboa"), "variant": "base", "passages": []}]}) == {}
    found = reader_diagnostics({"rag": [row("Lisboa")], "rag_cf": [cf_row("Monte Claro", "Monte Claro")]})
    assert set(found) == {"attribution", "faithfulness"}
    assert set(found["attribution"]) == {"rag"} and found["faithfulness"]["rag_cf"]["n"] == 1


def test_render_diagnostics_tables() -> None:
    rows = [row("Campos Altos", qid="a"), row("Porto Azul", qid="b"), row("Vila Serena", qid="c")]
    scores = reader_diagnostics({"rag": rows, "rag_cf": [cf_row("Monte Claro", "Monte Claro")]})
    lines = render_diagnostics(scores)
    text = "\n".join(lines)
    headings = [x for x in lines if x.startswith("#### ")]
    assert [h.split(" (")[0] for h in headings] == [
        "#### Where the reader loses",
        "#### EM by distractor passages",
        "#### When context and memory disagree",
    ]
    assert "| value from another page's passage (`other_page`) | 1 (50.0 %) |" in text
    assert "| the other slot (birth ↔ death) (`other_slot`) | 1 (50.0 %) |" in text
    assert "| **wrong answers** (EM 0, no error) / n | 2 / 3 |" in text
    assert "| … in passage 3 | 1 (50.0 %); alone 1 |" in text
    assert "0.333 [" in text and "(n=3)" in text  # EM 1/3 with one distractor, Wilson interval
    assert render_diagnostics({"variants": {}}) == []  # an older run: no section
    assert render_diagnostics({"attribution": "broken", "faithfulness": {"x": 1}}) == []


def _run_dir(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    write_jsonl(run_dir / "answers.jsonl", rows)
    config = {"questions": "questions/x.jsonl", "index": {"k": 3}, "run": {"bootstrap_samples": 200}}
    atomic_write_json(run_dir / "scores.json", {"variants": {}, "config": config, "run_id": "r1"})
    return run_dir


def test_rescore_adds_the_diagnostics_and_the_report_renders_them(tmp_path: Path) -> None:
    rows = [row("Campos Altos", qid="a"), row("Vila Serena", qid="b"), row("1940", "birth_year", qid="c")]
    run_dir = _run_dir(tmp_path, rows)
    rescore.rescore(run_dir)
    scores = read_json(run_dir / "scores.json")
    assert scores["attribution"] == attr.attribution({"rag": rows})
    assert "faithfulness" not in scores and "variants" in scores and scores["config"]["index"]["k"] == 3
    out = report.render([run_dir], tmp_path / "REPORT.md", samples=0)
    text = out.read_text(encoding="utf-8")
    assert "#### Where the reader loses" in text and "#### EM by distractor passages" in text
    assert "When context and memory disagree" not in text
    # stale keys go when rescoring finds nothing to report, and the report still renders without them
    write_jsonl(run_dir / "answers.jsonl", [{**r, "variant": "base", "passages": []} for r in rows])
    rescore.rescore(run_dir)
    assert "attribution" not in read_json(run_dir / "scores.json")
    text = report.render([run_dir], tmp_path / "REPORT.md", samples=0).read_text(encoding="utf-8")
    assert "Where the reader loses" not in text
