"""Scoring rules that know Portuguese answers; each rule has a case that must stay wrong.

Invented questions and answers (none taken from the repository's data)."""

from __future__ import annotations

import pytest

from bench.core import metrics as m
from bench.eval import scoring


def _score(answer: str, gold: list[str], question: str, relation: str | None = None) -> dict:
    row = {"question": question, "answers": gold, **({"relation": relation} if relation else {})}
    return scoring.score_answer(answer, gold, question, question_row=row)


@pytest.mark.parametrize(
    ("answer", "gold", "question", "relation", "em"),
    [
        ("Vila Serena, Paraná", ["Vila Serena"], "Onde nasceu Teodora Prates?", "birth_place", 1.0),
        ("Fontelinda (Portugal)", ["Fontelinda"], "Qual é o local da morte de Iolanda Sarzedo?", None, 1.0),
        ("Campo Raso, Alemanha", ["Campo Raso"], "Em que cidade morreu Iolanda Sarzedo?", None, 1.0),
        ("Goiás, Brasil", ["Goiás"], "A que estado pertence Águas do Poente?", "municipality_state", 1.0),
        # a gold place's qualifier is optional: the bare name is the same place
        ("Lagoa Funda", ["Lagoa Funda (Minas Gerais)"], "Onde morreu Iolanda Sarzedo?", "death_place", 1.0),
        ("Lagoa Funda, MG", ["Lagoa Funda (MG)"], "Onde nasceu Teodora Prates?", "birth_place", 1.0),
        ("Minas Gerais", ["Lagoa Funda (Minas Gerais)"], "Onde morreu Iolanda Sarzedo?", "death_place", 0.0),
        ("Lagoa Funda", ["Lagoa Funda (Minas Gerais)"], "Qual é o apelido de Teodora?", None, 0.0),
        # another place never counts, whatever follows it
        ("Porto Azul, Paraná", ["Vila Serena"], "Onde nasceu Teodora Prates?", "birth_place", 0.0),
        ("Paraná, Vila Serena", ["Vila Serena"], "Onde nasceu Teodora Prates?", "birth_place", 0.0),
        # a place with a date is not the place alone; a long lower-case gold is not a place name
        ("Vila Serena, 3 de abril de 1871", ["Vila Serena"], "Onde nasceu Teodora Prates?", None, 0.0),
        ("no balcão, até sexta", ["no balcão"], "Onde entrego o formulário?", None, 0.0),
        # not a place question: the rule does not apply
        ("1871, 1938", ["1871"], "Em que ano nasceu Teodora Prates?", "birth_year", 0.0),
        ("Vila Serena, Paraná", ["Vila Serena"], "Qual é o apelido de Teodora?", None, 0.0),
    ],
)
def test_place_answer_with_its_region_is_exact(
    answer: str, gold: list[str], question: str, relation: str | None, em: float
) -> None:
    scores = _score(answer, gold, question, relation)
    assert scores["exact_match"] == em
    assert scores["f1"] == (1.0 if em else scores["f1"])  # an exact place is exact for F1 too


def test_relation_from_the_question_row_decides_the_place_rule() -> None:
    # the wording says nothing about a place; the relation does
    q = "Teodora Prates veio ao mundo em que localidade de nascença?"
    assert _score("Vila Serena, Paraná", ["Vila Serena"], q, "birth_place")["exact_match"] == 1.0
    assert _score("Vila Serena, Paraná", ["Vila Serena"], "Teodora Prates veio de?")["exact_match"] == 0.0


def test_por_cento_is_percent_and_cento_is_not_100_inside_it() -> None:
    gold = ["setenta e cinco por cento"]
    assert m.normalize_pt("setenta e cinco por cento") == m.normalize_pt("75%") == "75%"
    assert m.normalize_pt("75 %") == "75%" and m.normalize_pt("12,5%") == "12.5%"
    assert m.exact_match("75%", gold) == 1.0 and m.token_f1("75 %", gold) == 1.0
    # the wrong percentage shares nothing with the gold one
    assert m.exact_match("100%", gold) == 0.0 and m.token_f1("100%", gold) == 0.0
    assert m.token_f1("cem por cento", gold) == 0.0
    # "cento" outside "por cento" is still a hundred
    assert m.normalize_pt("cento e vinte") == "120"


def test_thousands_with_spaces_or_dots_normalise_alike() -> None:
    assert m.normalize_pt("7 517 km") == m.normalize_pt("7.517 km") == m.normalize_pt("7517 km") == "7517 km"
    assert m.normalize_pt("12\u00a0300 habitantes") == "12300 habitantes"
    assert m.exact_match("7.517 km", ["7 517 km"]) == 1.0
    # a decimal stays a decimal, a year stays a year, two separate numbers stay two numbers
    assert m.exact_match("7.5 km", ["7 517 km"]) == 0.0
    assert m.normalize_pt("7,5") == "7.5" != m.normalize_pt("7 5")
    assert m.normalize_pt("em 1912 1913") == "em 1912 1913"
    assert m.normalize_pt("5 de março de 1912") == "5 de marco de 1912"
    assert m.exact_match("7 51", ["751"]) == 0.0


def test_question_stripping_keeps_words_of_the_gold_answer() -> None:
    q = "Em que localidade nasceu Nuno Ribeiro Dias?"
    gold = ["Ribeiro Gonçalves, Piauí", "Ribeiro Gonçalves"]
    assert m.f1_qstripped("Ribeiro Gonçalves", gold, q) == 1.0
    assert m.f1_qstripped("Ribeiro Gonçalves, no Piauí", gold, q) == 1.0
    # a partial answer gets partial credit: "Piauí" is a third of the longer gold, not two thirds
    assert m.f1_qstripped("Piauí", gold, q) == pytest.approx(0.5)
    # restating the question (which holds "Ribeiro") still earns nothing
    assert m.f1_qstripped(q, gold, q) == 0.0
    assert m.f1_qstripped("Nuno Ribeiro Dias nasceu numa localidade", gold, q) == 0.0


def test_a_gold_one_is_contained_in_apenas_uma() -> None:
    assert m.contains("apenas uma", ["uma"]) == 1.0
    assert m.contains("Só um.", ["um"]) == 1.0
    assert m.contains("1 vez", ["uma"]) == 1.0
    # other counts stay wrong, and "nenhuma" is not "uma"
    assert m.contains("apenas duas", ["uma"]) == 0.0
    assert m.contains("nenhuma", ["uma"]) == 0.0
    assert m.exact_match("apenas uma", ["uma"]) == 0.0  # containment only, not exact
