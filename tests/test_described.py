"""``bench questions describe``: fact questions without the subject's name."""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import main
from bench.core.metrics import normalize_pt
from bench.questions.described import describe_rows, predicate

REPO = Path(__file__).resolve().parent.parent


def _row(qid: str, rel: str, answer: str, context: str, title: str = "Teodora Prates", art: int = 7) -> dict:
    return {"id": qid, "question": f"? {title}", "answers": [answer], "title": title, "article_id": art,
            "context": context, "split": "dev", "relation": rel}  # fmt: skip


LEAD = "Teodora Prates (Vila Serena, 2 de maio de 1871 — Porto Azul, 1960) foi uma poetisa brasileira."


def test_description_clue_and_gender() -> None:
    assert predicate(LEAD) == ("a", "poetisa brasileira")
    assert predicate("Nuno Dias (1899) é um pintor e escultor português, autor de murais.") == (
        "o",
        "pintor e escultor português",
    )
    assert predicate("Nuno Dias (1899) pintou murais.") is None
    rows = [
        _row("a", "birth_place", "Vila Serena", LEAD),
        _row("b", "birth_year", "1871", LEAD),
        _row("c", "death_year", "1960", LEAD),
    ]
    out, counts = describe_rows(rows)
    q = {r["id"]: r["question"] for r in out}
    assert q == {
        "a-described": "Onde nasceu a poetisa brasileira nascida em 1871?",
        "b-described": "Em que ano nasceu a poetisa brasileira nascida em Vila Serena?",
        "c-described": "Em que ano morreu a poetisa brasileira nascida em 1871?",
    }
    assert counts == {"kept": 3}
    assert all(r["answers"] == s["answers"] and r["article_id"] == 7 for r, s in zip(out, rows, strict=True))


def test_rows_that_would_leak_or_say_nothing_are_skipped() -> None:
    rows = [
        _row("a", "birth_place", "Vila Serena", LEAD.replace("poetisa", "poetisa Prates")),  # named
        _row("b", "death_place", "Porto Azul", LEAD, art=8),  # no birth year on this page: no clue
        _row("c", "municipality_state", "Bahia", "Cachoeira é um município brasileiro do estado da Bahia."),
        _row("d", "birth_year", "1871", "Teodora Prates (1871) escreveu."),  # no description
    ]
    out, counts = describe_rows(rows)
    assert out == []
    assert counts == {"names_the_subject": 1, "no_clue": 1, "relation": 1, "no_description": 1}


def test_committed_described_file_is_what_the_command_writes(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    assert main(["questions", "describe", "--questions", str(REPO / "questions/ptwiki-facts.jsonl"),
                 "-o", str(out)]) == 0  # fmt: skip
    assert out.read_bytes() == (REPO / "questions" / "ptwiki-facts-described.jsonl").read_bytes()
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    dev = [r for r in rows if r["split"] == "dev"]
    assert len(dev) >= 600  # a probe of the study's size
    for r in dev:
        words = set(normalize_pt(r["question"]).split())
        title = {w for w in normalize_pt(r["title"]).split() if len(w) > 3}
        assert not words & title, r["question"]  # the subject is never named
