"""Fact-probe question generation (bench.questions.factpatterns, bench.questions.factprobe,
bench.questions.factcorpus) on tiny dumps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import main
from bench.config import BenchError
from bench.ingest.corpus import iter_articles
from bench.questions import factcorpus, factprobe
from bench.questions.factpatterns import Drop, Fact, biography_facts, extract, municipality_facts
from tests.conftest import make_dump

EÇA = (
    "'''José Maria de Eça de Queirós''' ([[Póvoa de Varzim]], [[25 de novembro]] de [[1845]] — "
    "[[Paris]], [[16 de agosto]] de [[1900]]) foi um [[escritor]] português.\n\n== Obra ==\nOs Maias."
)
PAGES: list[dict[str, object]] = [
    {"title": "Eça de Queirós", "id": 10, "text": EÇA},
    {
        "title": "Candido Portinari",
        "id": 11,
        "text": "'''Candido Portinari''' (Brodowski, São Paulo, 30 de dezembro de 1903 — Rio de Janeiro, "
        "6 de fevereiro de 1962) foi um pintor brasileiro.",
    },
    {
        "title": "Edmund Husserl",
        "id": 12,
        "text": "'''Edmund Husserl''' (alemão: [ˈhʊsɐl]; Proßnitz, 8 de abril de 1859 — Friburgo, "
        "27 de abril de 1938) foi um filósofo alemão.",
    },
    {
        "title": "Varre-Sai",
        "id": 13,
        "text": "'''Varre-Sai''' é um município brasileiro do estado do Rio de Janeiro.",
    },
    {"title": "Corbélia", "id": 14, "text": "'''Corbélia''' é um município brasileiro do estado do Parana."},
    {
        "title": "Pesquería",
        "id": 15,
        "text": "'''Pesquería''' é um município do estado de Nuevo León, no México.",
    },
    {"title": "João Silva", "id": 16, "text": "'''João Silva''' (Lisboa, 1 de maio de 1950) é um ator."},
    {
        "title": "João Silva (futebolista)",
        "id": 17,
        "text": "'''João Silva''' (Porto, 2 de junho de 1980) é um futebolista.",
    },
    {"title": "Mateus Velho", "id": 18, "text": "'''Mateus Velho''' (ca. 1495 — 1548) foi um compositor."},
    {
        "title": "Ana Nova",
        "id": 19,
        "text": "'''Ana Nova''' (nascida em 3 de março de 1990, em perto de Braga) é atriz.",
    },
    {
        "title": "Geografia de Goiana",
        "id": 22,
        "text": "Goiana é um município brasileiro do estado de Pernambuco.",
    },
    {
        "title": "Berlim",
        "id": 20,
        "text": "'''Berlim''' é a capital da [[Alemanha]].\n\n== História ==\nAntiga.",
    },
    {"title": "O Recado", "id": 21, "text": "'''O Recado''' (1971) é um filme português."},
]


def _dump(tmp_path: Path, pages: list[dict[str, object]] = PAGES, name: str = "facts.xml") -> Path:
    path = tmp_path / name
    path.write_text(make_dump(pages), encoding="utf-8")
    return path


def _name(i: int) -> str:
    """Names may not hold digits (the biography pattern refuses them): 0 → "Aa", 11 → "Bb"."""
    return "ABCDEFGHIJ"[i // 10] + "abcdefghij"[i % 10]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _facts(items: list[Fact | Drop]) -> dict[str, tuple[str, ...]]:
    return {f.relation: f.answers for f in items if isinstance(f, Fact)}


def _drops(items: list[Fact | Drop]) -> dict[str, str]:
    return {d.relation: d.reason for d in items if isinstance(d, Drop)}


# --------------------------------------------------------------------------- patterns


def test_biography_pattern_birth_and_death() -> None:
    lead = (
        "Eça de Queirós (Póvoa de Varzim, 25 de novembro de 1845 — Paris, 16 de agosto de 1900) foi escritor."
    )
    assert _facts(biography_facts(lead)) == {
        "birth_year": ("1845",),
        "birth_place": ("Póvoa de Varzim",),
        "death_year": ("1900",),
        "death_place": ("Paris",),
    }


def test_biography_variants_living_date_first_and_bare_years() -> None:
    living = biography_facts("Thomas Muster (Leibnitz, 2 de outubro de 1967) é um ex-tenista austríaco.")
    assert _facts(living) == {"birth_year": ("1967",), "birth_place": ("Leibnitz",)}
    first = biography_facts("Adam Goldberg (25 de outubro de 1970, Santa Mônica, Califórnia) é um ator.")
    assert _facts(first)["birth_place"] == ("Santa Mônica, Califórnia", "Santa Mônica")
    assert _facts(biography_facts("Zhang Juzheng (1525 - 1582) foi um político.")) == {
        "birth_year": ("1525",),
        "death_year": ("1582",),
    }
    born = biography_facts("Kimber Blake (nascida em 20 de fevereiro de 1978), é uma ex-atriz.")
    assert _facts(born) == {"birth_year": ("1978",)}


def test_biography_pattern_ignores_films_glosses_and_sentences() -> None:
    assert biography_facts("O Recado (1971) é um filme português.") == []  # a film's year, not a life span
    assert biography_facts("Armageddon (2006) foi um evento.") == []
    assert biography_facts("Berlim (em alemão: Berlin) é a capital da Alemanha.") == []
    assert biography_facts("Outiz é uma freguesia com 913 habitantes (2011).") == []
    assert biography_facts("Grano (asteróide 1451) é um asteróide.") == []


def test_biography_drop_reasons() -> None:
    ipa = biography_facts("Edmund Husserl (alemão: [ˈhʊsɐl]; Proßnitz, 8 de abril de 1859) foi um filósofo.")
    assert _facts(ipa) == {"birth_year": ("1859",)} and _drops(ipa) == {"birth_place": "markup_or_ipa"}
    circa = biography_facts("Mateus Velho (ca. 1495 — 1548) foi um compositor.")
    assert _drops(circa) == {"birth_year": "unparsed_date"} and _facts(circa) == {"death_year": ("1548",)}
    bc = biography_facts("Aristóteles (Estagira, 384 a.C. — Cálcis, 322 a.C.) foi um filósofo.")
    assert _facts(bc) == {} and _drops(bc) == {"birth_year": "unparsed_date"}
    bad = biography_facts(
        "Frank Dyson (Measham, 8 de janeiro de 1868 — mar de Cidade do Cabo, 1939) foi astrónomo."
    )
    assert _drops(bad) == {"death_place": "bad_place"} and _facts(bad)["death_year"] == ("1939",)
    cyrillic = biography_facts("Ivan Petrov (Москва, 1 de maio de 1900) foi um poeta.")
    assert _drops(cyrillic) == {"birth_place": "bad_place"}
    backwards = biography_facts("Fulano Tal (Lisboa, 1900 — Porto, 1850) foi um poeta.")
    assert _facts(backwards) == {} and set(_drops(backwards).values()) == {"implausible_year"}
    glued = biography_facts(
        "Zenón Díaz (San Marcos, 31 de dezembro de 1880-Rosário, 1948) foi um futebolista."
    )
    assert _facts(glued) == {}  # the death year must never be read as the birth year


def test_municipality_pattern() -> None:
    facts = municipality_facts(
        "Varre-Sai é um município brasileiro do estado do Rio de Janeiro, no Noroeste."
    )
    assert _facts(facts) == {"municipality_state": ("Rio de Janeiro",)}
    assert facts[0].context == "Varre-Sai é um município brasileiro do estado do Rio de Janeiro, no Noroeste."  # type: ignore[union-attr]
    ms = municipality_facts(
        "Rio Verde de Mato Grosso é um município brasileiro situado no estado de Mato Grosso do Sul."
    )
    assert _facts(ms) == {"municipality_state": ("Mato Grosso do Sul",)}
    assert _facts(municipality_facts("Grossos, município no estado do Rio Grande do Norte (Brasil).")) == {
        "municipality_state": ("Rio Grande do Norte",)
    }
    assert _drops(municipality_facts("Jalpa é um município do estado de Zacatecas, no México.")) == {
        "municipality_state": "unknown_state"
    }
    assert municipality_facts("Esbjerg é um município dinamarquês.") == []
    assert (
        municipality_facts("Esta é a lista de bairros de Niterói, município do estado do Rio de Janeiro.")
        == []
    )
    assert (
        municipality_facts("O Brasão de Simão é o símbolo de Simão, município do estado de São Paulo.") == []
    )


def test_extract_reads_only_the_lead_paragraph() -> None:
    text = "Berlim é a capital.\n\nVarre-Sai é um município brasileiro do estado do Rio de Janeiro."
    assert extract(text) == []


# --------------------------------------------------------------------------- generation on a tiny dump


def test_generate_rows_and_drop_reasons(tmp_path: Path) -> None:
    out = tmp_path / "facts.jsonl"
    report = factprobe.generate(_dump(tmp_path), out, seed=0)
    rows = _rows(out)
    by_title: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        by_title.setdefault(r["title"], {})[r["relation"]] = r["answers"]
    assert by_title["Eça de Queirós"] == {
        "birth_year": ["1845"],
        "birth_place": ["Póvoa de Varzim"],
        "death_year": ["1900"],
        "death_place": ["Paris"],
    }
    assert by_title["Candido Portinari"]["birth_place"] == ["Brodowski, São Paulo", "Brodowski"]
    assert by_title["Varre-Sai"] == {"municipality_state": ["Rio de Janeiro"]}
    assert "birth_place" not in by_title["Edmund Husserl"]
    dropped = {
        "João Silva",
        "João Silva (futebolista)",
        "Corbélia",
        "Berlim",
        "O Recado",
        "Geografia de Goiana",
    }
    assert not dropped & set(by_title)
    drops = report["drops"]
    assert drops["birth_year"]["ambiguous_subject"] == 2  # "João Silva" twice: both dropped
    assert drops["birth_place"]["markup_or_ipa"] == 1
    assert drops["birth_place"]["bad_place"] == 1  # "em perto de Braga"
    assert drops["birth_year"]["unparsed_date"] == 1
    assert drops["municipality_state"] == {
        "answer_not_in_article": 1,
        "subject_mismatch": 1,
        "unknown_state": 1,
    }
    assert report["questions"] == len(rows) and report["facts_valid"]["birth_year"] == 4
    assert json.loads(factprobe.report_path(out).read_text("utf-8")) == report
    articles = {a.title: a.text for a in iter_articles(_dump(tmp_path))}
    keys = {
        "id",
        "question",
        "answers",
        "title",
        "context",
        "split",
        "lang",
        "relation",
        "template",
        "stratum",
    }
    for r in rows:
        assert keys <= set(r) and r["lang"] == "pt" and r["stratum"] in factprobe.STRATA
        assert all(a in articles[r["title"]] and a in r["context"] for a in r["answers"])
        assert r["title"] in r["question"] and r["question"].endswith("?")
    assert len({r["id"] for r in rows}) == len(rows)


def test_generate_is_deterministic_and_seeded(tmp_path: Path) -> None:
    pages = [
        {
            "title": f"Pessoa {_name(i)}",
            "id": 100 + i,
            "text": f"Pessoa {_name(i)} (Lisboa, {1900 + i}) foi um poeta.",
        }
        for i in range(40)
    ]
    dump = _dump(tmp_path, pages)
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    factprobe.generate(dump, a, seed=0)
    factprobe.generate(dump, b, seed=0)
    factprobe.generate(dump, c, seed=1)
    assert a.read_bytes() == b.read_bytes()
    assert [r["split"] for r in _rows(a)] != [r["split"] for r in _rows(c)]
    assert factprobe.report_path(a).name == "a.report.json"


def test_splits_are_by_article(tmp_path: Path) -> None:
    pages = [
        {
            "title": f"Autor {_name(i)}",
            "id": 200 + i,
            "text": f"Autor {_name(i)} (Braga, 1 de maio de {1800 + i} — Porto, {1870 + i}) foi um autor.",
        }
        for i in range(60)
    ]
    out = tmp_path / "s.jsonl"
    report = factprobe.generate(_dump(tmp_path, pages), out, seed=3, train_templates="all")
    rows = _rows(out)
    splits: dict[str, set[str]] = {}
    for r in rows:
        splits.setdefault(r["title"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    assert {s for (s,) in splits.values()} == {"train", "dev", "test"}
    per_fact = {(r["title"], r["relation"], r["split"]) for r in rows}
    for title, relation, split in per_fact:
        n = sum(1 for r in rows if r["title"] == title and r["relation"] == relation)
        assert n == (3 if split == "train" else 1)  # every template for train, one for dev/test
    assert sum(report["articles_per_split"].values()) == 60
    assert set(report["questions_per_stratum_split"]) <= {
        f"{s}/{p}" for s in factprobe.STRATA for p in splits_names()
    }


def splits_names() -> list[str]:
    return [name for name, _ in factprobe.SPLITS]


def test_max_per_kind_and_kinds(tmp_path: Path) -> None:
    out = tmp_path / "k.jsonl"
    report = factprobe.generate(
        _dump(tmp_path), out, kinds=["birth_year", "municipality_state"], max_per_kind=2
    )
    assert {r["relation"] for r in _rows(out)} == {"birth_year", "municipality_state"}
    assert report["facts_valid"] == {"birth_year": 2, "municipality_state": 1}
    assert report["facts_over_max_per_kind"] == {"birth_year": 2}
    with pytest.raises(BenchError, match="unknown kind"):
        factprobe.generate(_dump(tmp_path), out, kinds=["capital"])


def test_subject_must_fit_the_title() -> None:
    assert factprobe.subject_matches("Sid Abel", "birth_year", "Sidney Gerald Abel")
    assert factprobe.subject_matches("Eça de Queirós", "birth_year", "José Maria de Eça de Queiroz")  # "eca"
    assert not factprobe.subject_matches("Triple H", "birth_year", "Paul Michael Levesque")
    assert factprobe.subject_matches("Bonito (Pernambuco)", "municipality_state", "Bonito")
    assert not factprobe.subject_matches("Geografia de Goiana", "municipality_state", "Goiana")


def test_strata_terciles() -> None:
    cuts = factprobe.tercile_cuts([10, 20, 30, 40, 50, 60])
    assert cuts == (30, 50)
    assert [factprobe.stratum_of(n, cuts) for n in (10, 30, 49, 50, 60)] == [
        "obscure",
        "mid",
        "mid",
        "popular",
        "popular",
    ]


# --------------------------------------------------------------------------- CLI and the subset corpus


def test_cli_generate_then_subset_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pages = PAGES + [
        {
            "title": f"Autor {_name(i)}",
            "id": 300 + i,
            "text": f"Autor {_name(i)} (Braga, {1800 + i}) foi um autor.",
        }
        for i in range(30)
    ]
    dump, out = _dump(tmp_path, pages), tmp_path / "q.jsonl"
    assert main(["questions", "generate", "--corpus", str(dump), "-o", str(out), "--seed", "0"]) == 0
    assert "questions; report" in capsys.readouterr().out
    rows = _rows(out)
    dev_titles = {r["title"] for r in rows if r["split"] == "dev"}
    sub = tmp_path / "sub.xml.bz2"
    args = ["questions", "corpus", "--questions", str(out), "--dump", str(dump), "-o", str(sub)]
    assert main([*args, "--split", "dev", "--distractors", "3"]) == 0
    titles = [a.title for a in iter_articles(sub)]
    assert dev_titles <= set(titles) and len(titles) == len(dev_titles) + 3
    train_titles = {r["title"] for r in rows if r["split"] == "train"}
    assert set(titles) - dev_titles <= train_titles
    first = sub.read_bytes()
    assert main([*args, "--split", "dev", "--distractors", "3"]) == 0
    assert sub.read_bytes() == first
    sel = factcorpus.select(out, "dev", 1, 0, 0)
    assert len(sel.gold) == 1 and sel.questions == 1


def test_cli_generate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = _dump(tmp_path, [PAGES[-2]])  # Berlim only: no fact
    assert main(["questions", "generate", "--corpus", str(dump), "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "no valid fact" in capsys.readouterr().err


def test_facts_profile_matches_the_committed_files() -> None:
    """The facts profile's questions have their pages in its corpus; the report matches the committed file."""
    from bench.config import load_config
    from bench.ingest.dump import iter_pages
    from bench.io import iter_jsonl, sha256_file
    from bench.questions.load import load_questions

    cfg = load_config("facts")
    rows = load_questions(cfg, require=("title", "context", "relation", "stratum"))
    assert cfg.split == "dev" and 200 <= len(rows) <= 500
    corpus_titles = {p.title for path in cfg.corpus_paths() for p in iter_pages(path) if p.ns == 0}
    assert {r["title"] for r in rows} <= corpus_titles
    qpath = cfg.path(cfg.questions)
    report = json.loads(factprobe.report_path(qpath).read_text("utf-8"))
    assert report["output_sha256"] == sha256_file(qpath)
    assert (
        sum(report["questions_per_relation"].values()) >= 1000 and len(report["questions_per_relation"]) >= 3
    )
    all_rows = list(iter_jsonl(qpath))
    train_titles = {str(r["title"]) for r in all_rows if r["split"] == "train"}
    dev_titles = {str(r["title"]) for r in all_rows if r["split"] == "dev"}
    # distractors: train-fact pages, and dev pages past the profile's limit; never a test page
    assert corpus_titles - {r["title"] for r in rows} <= train_titles | dev_titles
    assert not (corpus_titles - {r["title"] for r in rows}) & {
        str(r["title"]) for r in all_rows if r["split"] == "test"
    }


def test_link_targets_become_gold_aliases_of_places(tmp_path: Path) -> None:
    from bench.questions.factpatterns import add_aliases, link_aliases

    lead = (
        "'''Rui Tavares Mourão''' ([[Belém (Pará)|Belém]], 3 de março de 1901 — [[Vila Serena]], 1970) foi "
        "um poeta do [[Partido Comunista Brasileiro|PCB]]. [[Ficheiro:Rui.jpg|Rui]]"
    )
    links = link_aliases(lead)
    assert links == {"Belém": ("Belém (Pará)",), "PCB": ("Partido Comunista Brasileiro",)}
    facts = {f.relation: add_aliases(f, links) for f in biography_facts(
        "Rui Tavares Mourão (Belém, 3 de março de 1901 — Vila Serena, 1970) foi um poeta."
    ) if isinstance(f, Fact)}  # fmt: skip
    assert facts["birth_place"].answers == ("Belém", "Belém (Pará)")
    assert facts["death_place"].answers == ("Vila Serena",)  # an unpiped link has no other name
    assert facts["birth_year"].answers == ("1901",)  # only places get aliases

    out = tmp_path / "facts.jsonl"
    factprobe.generate(_dump(tmp_path, [{"title": "Rui Tavares Mourão", "id": 30, "text": lead}]), out)
    by_relation = {r["relation"]: r["answers"] for r in _rows(out)}
    assert by_relation["birth_place"] == ["Belém", "Belém (Pará)"]
    assert by_relation["death_place"] == ["Vila Serena"]


def test_page_text_facts_equal_the_question_files_and_the_audit_counts_them(tmp_path: Path) -> None:
    """text_facts reads one page's facts without a question file: on every page the generator kept, the same
    (relation, canonical answer) pairs as its rows; fact_source.audit counts the agreeing pages and names a
    page whose question-file answer was altered."""
    from bench.config import load_config
    from bench.eval import fact_source
    from bench.training.augment import page_facts
    from bench.training.sft_views import title_key

    dump, out = _dump(tmp_path), tmp_path / "facts.jsonl"
    factprobe.generate(dump, out, seed=0)
    rows = _rows(out)
    by_page = page_facts(rows)
    articles = {a.title: a.text for a in iter_articles(dump)}
    kept = sorted({r["title"] for r in rows})
    assert len(kept) >= 4
    for title in kept:
        assert factprobe.text_facts(title, articles[title]) == by_page[title_key(title)], title
    assert factprobe.text_facts("Geografia de Goiana", articles["Geografia de Goiana"]) == {}
    assert factprobe.text_facts("Eça de Queirós", articles["Eça de Queirós"], kinds=("death_year",)) == {
        "death_year": "1900"
    }
    cfg = load_config(None, [f"corpus={dump}", f"questions={out}", f"results_dir={tmp_path / 'r'}"])
    got = fact_source.audit(cfg, [*kept, "Página Ausente"])
    assert got["pages"] == got["identical"] == len(kept) and got["not_in_corpus"] == 1
    assert got["facts"] == len(rows) and got["differ"] == []
    altered = [{**r, "answers": ["1846"]} if r["relation"] == "birth_year" and r["title"] == "Eça de Queirós"
               else r for r in rows]  # fmt: skip
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in altered), encoding="utf-8")
    got = fact_source.audit(cfg, kept)
    assert got["identical"] == len(kept) - 1
    assert got["differ"][0]["title"] == "Eça de Queirós"
    assert got["differ"][0]["page_text"]["birth_year"] == "1845"
    assert got["differ"][0]["question_file"]["birth_year"] == "1846"
