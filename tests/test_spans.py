"""Typed span baselines on invented Portuguese lead sentences (none taken from the repository's data)."""

from __future__ import annotations

import pytest

from bench.eval.baselines import BASELINES
from bench.eval.spans import answer_kind, pick_span

LEAD = (
    "Teodora Vilanova Prates (Vila Serena do Norte, 3 de abril de 1871 — Porto Azul, 19 de junho de 1938) "
    "foi uma cartógrafa e botânica fictícia. Estudou em Lagoa Funda de 1890 a 1895."
)
OTHER = (
    "Bernardo Quintela (Campos Altos, 1902 — Serra Nova, 1977) foi um pintor inventado. Em 1950 expôs em "
    "Porto Azul."
)
MUNICIPALITY = (
    "Águas do Poente é um município brasileiro do estado de Mato Grosso do Sul, na Microrregião de Terra "
    "Alta. Sua população estimada em 2020 era de 7 412 habitantes, numa área de 1 980 km²."
)


@pytest.mark.parametrize(
    ("question", "relation", "kind"),
    [
        ("Quando nasceu Teodora Prates?", None, "year"),
        ("Em que ano morreu Teodora Prates?", None, "year"),
        ("Onde nasceu Teodora Prates?", None, "place"),
        ("Em que cidade morreu Teodora Prates?", None, "place"),
        ("Qual é o local de nascimento de Teodora Prates?", None, "place"),
        ("Em que estado fica Águas do Poente?", None, "state"),
        ("Quantos habitantes tem Águas do Poente?", None, "number"),
        ("Qual o número de habitantes de Águas do Poente?", None, "number"),
        ("Quem fundou Águas do Poente?", None, "person"),
        ("Fale de Águas do Poente.", None, None),
        ("Onde nasceu Teodora Prates?", "birth_year", "year"),  # the relation overrides the wording
        ("Águas do Poente é um município de que estado do Brasil?", "municipality_state", "state"),
    ],
)
def test_answer_kind(question: str, relation: str | None, kind: str | None) -> None:
    assert answer_kind(question, relation) == kind


@pytest.mark.parametrize(
    ("question", "relation", "expected"),
    [
        ("Em que ano nasceu Teodora Vilanova Prates?", "birth_year", "1871"),
        ("Teodora Vilanova Prates morreu em que ano?", "death_year", "1938"),
        ("Onde nasceu Teodora Vilanova Prates?", "birth_place", "Vila Serena do Norte"),
        ("Qual é o local da morte de Teodora Vilanova Prates?", "death_place", "Porto Azul"),
        # without a relation, the wording decides birth or death
        ("Em que localidade morreu Teodora Prates?", None, "Porto Azul"),
        ("Quando nasceu Teodora Prates?", None, "1871"),
        # the other biography in the same passages is never confused with the subject's
        ("Onde morreu Bernardo Quintela?", "death_place", "Serra Nova"),
        ("Em que ano nasceu Bernardo Quintela?", "birth_year", "1902"),
    ],
)
def test_span_reads_the_lead_parenthesis_of_the_subject(
    question: str, relation: str | None, expected: str
) -> None:
    row = {"question": question, **({"relation": relation} if relation else {})}
    assert pick_span(row, [OTHER, LEAD]) == expected
    assert BASELINES["span_rag"](row, [LEAD, OTHER]) == expected


def test_span_state_number_and_fallbacks() -> None:
    state_q = {
        "question": "A que estado pertence o município de Águas do Poente?",
        "relation": "municipality_state",
    }
    assert pick_span(state_q, [MUNICIPALITY]) == "Mato Grosso do Sul"
    number_q = {"question": "Quantos habitantes tem Águas do Poente?"}
    assert pick_span(number_q, [MUNICIPALITY]) == "7 412 habitantes"
    # no life-span parenthesis: the year nearest the subject's name
    plain = "A vila foi fundada em 1820 por colonos. Muito depois, Lúcio Barbacena chegou em 1911."
    assert pick_span({"question": "Em que ano chegou Lúcio Barbacena?"}, [plain]) == "1911"
    # a place question never answers with the subject's own name
    lives = ["Lúcio Barbacena vive em Monte Claro."]
    assert pick_span({"question": "Onde vive Lúcio Barbacena?"}, lives) == "Monte Claro"
    # nothing of the asked type: empty answer (scores 0), no exception
    assert pick_span({"question": "Em que ano nasceu Ana?"}, ["Ana gosta de flores."]) == ""
    assert pick_span({"question": "Onde nasceu Ana?"}, []) == ""


def test_span_death_question_on_a_living_person_does_not_return_the_birth_place() -> None:
    living = "Clarice Montebelo (Pedra Lisa, 12 de maio de 1980) é uma cantora inventada."
    row = {"question": "Onde morreu Clarice Montebelo?", "relation": "death_place"}
    assert pick_span(row, [living]) == ""


def test_span_prefers_the_lead_over_a_citation_naming_the_subject() -> None:
    citation = "Morre a pianista Iolanda Sarzedo (Jornal da Serra, 2 de março de 2011)"
    lead = "Iolanda Sarzedo (Fontelinda, 1931 — Campo Raso, 2 de março de 2011) foi uma pianista inventada."
    row = {"question": "Onde nasceu Iolanda Sarzedo?", "relation": "birth_place"}
    assert pick_span(row, [citation, lead]) == "Fontelinda"


def test_span_names_stop_at_a_full_stop_and_skip_the_subjects_full_name() -> None:
    text = "A vida de Rosa Quental Lima. Morreu em Campo Raso, longe da família."
    assert pick_span({"question": "Onde morreu Rosa Lima?"}, [text]) == "Campo Raso"
    # a name that holds a question word is still a candidate ("Laboratórios Tejo" for "que laboratórios")
    labs = "Os criadores trabalhavam nos Laboratórios Tejo, em Vila Serena."
    assert pick_span({"question": "Em que laboratórios trabalhavam os criadores?"}, [labs]) == (
        "Laboratórios Tejo"
    )
