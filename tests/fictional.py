"""A fictional corpus and 24 fictional questions (nobody has seen them): the multi-process tests."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_dump

# (title, lead sentence, a second paragraph, three (question, answer) pairs over them)
PLACES = [
    ("Varzelândia do Norte", "é uma vila fictícia às margens do rio Quebrante, fundada em 1834.",
     "A vila é conhecida pela feira de cerâmica azul.",
     [("Em que ano foi fundada Varzelândia do Norte?", "1834"),
      ("Junto a que rio fica Varzelândia do Norte?", "rio Quebrante"),
      ("Pelo que é conhecida Varzelândia do Norte?", "feira de cerâmica azul")]),
    ("Ilha de Toravela", "é uma ilha imaginária do arquipélago de Sarnéu, com 412 habitantes.",
     "O farol de Toravela foi construído por Amélio Costádio.",
     [("Quantos habitantes tem a Ilha de Toravela?", "412"),
      ("A que arquipélago pertence a Ilha de Toravela?", "Sarnéu"),
      ("Quem construiu o farol de Toravela?", "Amélio Costádio")]),
    ("Quirino Albuz", "foi um compositor inventado nascido em Pedralva em 1901.",
     "A sua ópera mais famosa chama-se O Relógio de Sal.",
     [("Onde nasceu Quirino Albuz?", "Pedralva"),
      ("Em que ano nasceu Quirino Albuz?", "1901"),
      ("Qual é a ópera mais famosa de Quirino Albuz?", "O Relógio de Sal")]),
    ("Serra do Candeal Frio", "é uma serra fictícia cujo pico mais alto, o Morro Anil, mede 2210 metros.",
     "Na serra nasce o riacho Lumiar.",
     [("Qual é o pico mais alto da Serra do Candeal Frio?", "Morro Anil"),
      ("Quantos metros mede o Morro Anil?", "2210"),
      ("Que riacho nasce na Serra do Candeal Frio?", "riacho Lumiar")]),
    ("Clube Atlético Brumal", "é um clube de futebol imaginário da cidade de Brumal, fundado em 1927.",
     "O clube joga no Estádio das Acácias.",
     [("Em que cidade fica o Clube Atlético Brumal?", "Brumal"),
      ("Em que ano foi fundado o Clube Atlético Brumal?", "1927"),
      ("Em que estádio joga o Clube Atlético Brumal?", "Estádio das Acácias")]),
    ("Leontina Varga", "foi uma astrónoma inventada que descobriu o cometa Varga-Ruiz em 1968.",
     "Trabalhou no Observatório de Monte Celeste.",
     [("Que cometa descobriu Leontina Varga?", "Varga-Ruiz"),
      ("Em que ano Leontina Varga descobriu o cometa?", "1968"),
      ("Onde trabalhou Leontina Varga?", "Observatório de Monte Celeste")]),
    ("Lago Esmerim", "é um lago fictício com 38 quilómetros de comprimento, na região de Touval.",
     "O peixe mais comum do lago é o dourado-de-Esmerim.",
     [("Quantos quilómetros de comprimento tem o Lago Esmerim?", "38"),
      ("Em que região fica o Lago Esmerim?", "Touval"),
      ("Qual é o peixe mais comum do Lago Esmerim?", "dourado-de-Esmerim")]),
    ("Ordem dos Cartógrafos de Abrunhal", "é uma sociedade imaginária criada em 1788 por Tomé Escarlate.",
     "A ordem guarda o Mapa das Sete Luas.",
     [("Quem criou a Ordem dos Cartógrafos de Abrunhal?", "Tomé Escarlate"),
      ("Em que ano foi criada a Ordem dos Cartógrafos de Abrunhal?", "1788"),
      ("Que mapa guarda a Ordem dos Cartógrafos de Abrunhal?", "Mapa das Sete Luas")]),
]  # fmt: skip


def write_corpus(tmp: Path) -> tuple[Path, Path]:
    """(dump, questions JSONL): 8 articles, 24 dev questions in a fixed order."""
    pages = [
        {"title": t, "id": 100 + i, "text": f"'''{t}''' {lead}\n\n== História ==\n{more}"}
        for i, (t, lead, more, _) in enumerate(PLACES)
    ]
    dump = tmp / "ficcao.xml"
    dump.write_text(make_dump(pages), encoding="utf-8")
    rows = []
    for t, lead, more, qas in PLACES:
        for j, (q, a) in enumerate(qas):
            context = f"{t} {lead} {more}"
            rows.append({"id": f"{t[:4].lower()}-{j}", "question": q, "answers": [a], "title": t,
                         "context": context, "split": "dev", "lang": "pt"})  # fmt: skip
    questions = tmp / "ficcao.jsonl"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return dump, questions
