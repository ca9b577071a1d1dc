from __future__ import annotations

import pytest

from bench.core import metrics as m


def test_normalize_pt_folds_accents_articles_punctuation() -> None:
    assert m.normalize_pt("  A Universidade de São Paulo! ") == "universidade de sao paulo"
    assert m.normalize_pt("«Os rios», e as águas…") == "rios e aguas"


def test_exact_match_and_f1_take_max_over_gold() -> None:
    assert m.exact_match("o Tejo", ["rio Tejo", "Tejo"]) == 1.0
    assert m.exact_match("rio Douro", ["rio Tejo", "Tejo"]) == 0.0
    assert m.token_f1("rio Tejo", ["Tejo", "rio Tejo"]) == 1.0
    # pred {rio, tejo, lisboa} vs gold {rio, tejo}: P=2/3, R=1 -> F1=0.8
    assert m.token_f1("rio Tejo Lisboa", ["rio Tejo"]) == pytest.approx(0.8)
    assert m.token_f1("Porto", ["Lisboa"]) == 0.0


def test_contains_is_word_aligned() -> None:
    assert m.contains("Fica junto ao rio Tejo, em Lisboa.", ["rio tejo"]) == 1.0
    assert m.contains("Tejolândia", ["Tejo"]) == 0.0


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Berlim é a capital e a maior cidade da Alemanha.", "pt"),
        ("O curso de Ciência da Computação tem duração de quatro anos.", "pt"),
        ("The capital of Germany is Berlin, its largest city.", "en"),
        ("The course lasts four years at the university.", "en"),
        ("Berlim", "und"),
        ("rio Tejo", "und"),
        ("quatro anos", "und"),
        ("Universidade Federal de Mato Grosso", "und"),  # only names (capitalised) -> no signal
        ("1998 2004 3 5", "und"),
        ("o colegiado de curso", "und"),  # Portuguese, but the classifier says Spanish at p ≈ 0.56
        ("disciplinas que pretende cursar", "und"),
    ],
)
def test_answer_language(text: str, lang: str) -> None:
    assert m.answer_language(text) == lang


def test_answer_language_does_not_touch_global_langid() -> None:
    import py3langid

    m.answer_language("Berlim é a capital e a maior cidade da Alemanha.")
    assert py3langid.classify("Das ist ein deutscher Satz über die Stadt Berlin.")[0] == "de"


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("três", "3"),
        ("3 docentes", "3 docentes"),
        ("Três docentes", "3 docentes"),
        ("vinte e cinco", "25"),
        ("cento e vinte e três", "123"),
        ("mil e quinhentos", "1500"),
        ("mil novecentos e noventa", "1990"),
        ("dez mil", "10000"),
        ("dois e três", "2 e 3"),  # a list, not 5
        ("1.000", "1000"),
        ("1.000.000 de habitantes", "1000000 de habitantes"),
        ("3,5", "3.5"),
        ("3.5", "3.5"),
        ("em 1954.", "em 1954"),
        ("uma", "1"),
        ("um", "1"),
        ("Uma.", "1"),
        ("uma universidade", "universidade"),  # article
        ("vinte e um", "21"),
        ("a", ""),
    ],
)
def test_normalize_pt_numbers_and_um(text: str, norm: str) -> None:
    assert m.normalize_pt(text) == norm


def test_number_forms_match_each_other() -> None:
    assert m.exact_match("3", ["três"]) == 1.0
    assert m.exact_match("três", ["3"]) == 1.0
    assert m.exact_match("1000", ["1.000"]) == 1.0
    assert m.exact_match("3,5", ["3.5"]) == 1.0
    assert m.contains("São 3 docentes.", ["três"]) == 1.0
    assert m.token_f1("3 docentes", ["três"]) == pytest.approx(2 / 3)


def test_um_uma_as_whole_answer_are_kept_and_empty_golds_dropped() -> None:
    # before: gold ["uma"] normalised to "" and an *empty* prediction scored EM = F1 = 1
    assert m.exact_match("", ["uma"]) == 0.0
    assert m.token_f1("", ["uma"]) == 0.0
    assert m.contains("", ["uma"]) == 0.0
    assert m.exact_match("uma", ["uma"]) == 1.0
    assert m.exact_match("1", ["uma"]) == 1.0
    assert m.exact_match("uma vez", ["uma"]) == 0.0
    # a gold that normalises to nothing is unusable: dropped, never matched
    assert m.usable_answers(["a", "—", "Lisboa"]) == ["Lisboa"]
    assert m.exact_match("", ["a"]) == 0.0 and m.contains("qualquer", ["—"]) == 0.0


def test_f1_qstripped_gives_nothing_for_repeating_the_question() -> None:
    q = "Como é contado o semestre de posicionamento?"
    gold = ["a partir do semestre de ingresso na UFMS"]
    answer = "O semestre de posicionamento é contado em 2021."  # restates the question: token F1 credit
    assert m.token_f1(answer, gold) == pytest.approx(2 / 7)
    assert m.f1_qstripped(answer, gold, q) == 0.0
    assert m.token_f1(q, gold) > 0 and m.f1_qstripped(q, gold, q) == 0.0  # echo scores 0
    # "semestre" is a question word but also a gold word: kept on both sides once the answer has new content
    assert m.f1_qstripped("a partir do semestre de ingresso na UFMS", gold, q) == 1.0
    assert m.f1_qstripped("a partir do ingresso na UFMS", gold, q) == pytest.approx(6 / 7)
    assert m.f1_qstripped("Por 10 docentes.", ["três"], "Quantos docentes compõem a comissão?") == 0.0
    assert m.f1_qstripped("três docentes", ["três"], "Quantos docentes compõem a comissão?") == 1.0


def test_f1_qstripped_gold_inside_the_question_falls_back_to_exact_match() -> None:
    q = "O curso é presencial ou a distância?"
    assert m.f1_qstripped("presencial", ["presencial"], q) == 1.0
    assert m.f1_qstripped("O curso é presencial", ["presencial"], q) == 0.0
    assert m.f1_qstripped(q, ["presencial"], q) == 0.0


def test_answer_in_context_checks_each_passage_alone() -> None:
    # "rio" ends passage 1 and "Tejo" starts passage 2: joined text would match, one at a time does not
    assert m.answer_in_context_at_k(["Lisboa fica no rio", "Tejo abaixo"], ["rio Tejo"], 2) == 0.0
    assert m.answer_in_context_at_k(["x", "junto ao rio Tejo"], ["rio Tejo"], 2) == 1.0
    assert m.answer_in_context_at_k(["x", "junto ao rio Tejo"], ["rio Tejo"], 1) == 0.0


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("这个城市位于葡萄牙的首都", "other"),
        ("Этот город находится в Португалии", "other"),
        ("La ciudad está situada junto al río y es la capital del país.", "other"),
        ("Die Stadt liegt am Fluss und ist die Hauptstadt des Landes.", "other"),
    ],
)
def test_answer_language_other(text: str, lang: str) -> None:
    assert m.answer_language(text) == lang
