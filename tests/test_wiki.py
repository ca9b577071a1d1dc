"""Ingest stage: streaming dump parsing, wikitext cleaning, bad input, JSONL round trip."""

from __future__ import annotations

import bz2
import gzip
import json
import random
import re
from pathlib import Path

import pytest
from conftest import REPO, SHARED, TINY_PAGES, make_dump
from hypothesis import given
from hypothesis import strategies as st

from bench.__main__ import main
from bench.config import BenchError
from bench.ingest import wikitext, wikitext_fast
from bench.ingest.corpus import Article, Section, ingest, iter_articles, iter_corpus
from bench.ingest.dump import iter_pages

REALISTIC = REPO / "corpora" / "realistic-markup.xml"
BENCH_SMALL = REPO / "corpora" / "bench-small.xml"
PTWIKI_SAMPLE = SHARED / "corpora" / "ptwiki-sample.xml.bz2"
RESIDUE = ("{{", "}}", "[[", "]]", "<ref", "'''", "{|", "|}", "<!--")


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _clean(text: str) -> str:
    return "\n\n".join(t for _, t in wikitext.clean_page(text)[0])


# ---- cleaning ----


def test_tiny_dump_articles(tiny_dump: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    stats = ingest(tiny_dump, out)
    rows = _read_jsonl(out)
    assert [r["title"] for r in rows] == ["Berlim", "Lisboa"]
    assert (stats.pages, stats.articles, stats.redirects, stats.other_namespace, stats.empty) == (
        4,
        2,
        1,
        1,
        0,
    )
    berlim = rows[0]
    assert berlim["text"] == "Berlim é a capital da Alemanha.\n\nFundada no século XIII."
    assert berlim["sections"] == [
        {"heading": "", "text": "Berlim é a capital da Alemanha."},
        {"heading": "História", "text": "Fundada no século XIII."},
    ]
    assert "pages seen 4; articles written 2" in stats.summary()
    assert "1 redirects, 1 other-namespace, 0 empty" in stats.summary()


@pytest.mark.parametrize(
    ("wikitext_in", "expected"),
    [
        ("[[Ficheiro:X.jpg|thumb|Uma ''legenda'' com [[link|ligação]]]]Depois.", "Depois."),
        ("[[Imagem:a.png|left]][[File:b.svg]][[Image:c.gif|x]]Texto.", "Texto."),
        ("Texto.[[Categoria:Capitais|Berlim]] [[en:Berlin]][[zh-min-nan:Berlin]]", "Texto."),
        ("Ver [[:Categoria:Capitais|a categoria]].", "Ver a categoria."),
        ("Um [[rio|rio longo]] e o [[Tejo]]s.", "Um rio longo e o Tejos."),
        ("Antes<!-- comentário\n== Falso ==\n-->depois.", "Antesdepois."),
        ("A {{Info|a={{b|c}}|d=[[e]]}}cidade{{Referências}}.", "A cidade."),
        ("Fonte<ref name=\"x\">[http://a.pt ''Título'']</ref> e<ref name=x/> fim.", "Fonte e fim."),
        ("Ver [http://exemplo.pt o sítio] e [http://sem-rotulo.pt].", "Ver o sítio e ."),
        ("'''Negrito''' e ''itálico'' e '''''ambos'''''.", "Negrito e itálico e ambos."),
        ("Lista:\n* um\n* dois\n# três\n; termo\n: definição", "Lista:\num\ndois\ntrês\ntermo\ndefinição"),
        ('Antes\n{| class="wikitable"\n|-\n| a || b\n{|\n|x\n|}\n|}\nDepois', "Antes\n\nDepois"),
        ("Texto&nbsp;com <small>entidades</small> &amp; <span>tags</span>.", "Texto com entidades & tags."),
        ("Ação, coração, ÁÉÍÓÚ ãõ ç.", "Ação, coração, ÁÉÍÓÚ ãõ ç."),
        ("Ac\u0327a\u0303o", "Ação"),  # NFD in, NFC out
    ],
)
def test_clean_constructs(wikitext_in: str, expected: str) -> None:
    assert _clean(wikitext_in) == expected


def test_sections_and_lead() -> None:
    pairs, _ = wikitext.clean_page(
        "Lead [[a|b]].\n== ''Um'' ==\nx\n=== [[Dois]] ===\ny\n== Vazio ==\n{{Referências}}\n"
    )
    assert pairs == [("", "Lead b."), ("Um", "x"), ("Dois", "y")]


def test_realistic_markup_has_no_residue(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    stats = ingest(REALISTIC, out)
    rows = _read_jsonl(out)
    assert (stats.pages, stats.articles, stats.redirects, stats.other_namespace) == (31, 13, 8, 10)
    for row in rows:
        fields = [str(row["text"])] + [f"{s['heading']}\n{s['text']}" for s in row["sections"]]  # type: ignore[attr-defined]
        for text in fields:
            for mark in RESIDUE:
                assert mark not in text, (row["title"], mark)
            assert "Categoria:" not in text and "Ficheiro:" not in text and "thumb|" not in text
    berlim = next(r for r in rows if r["title"] == "Berlim")
    assert str(berlim["text"]).startswith("Berlim é a capital e um dos dezesseis estados da Alemanha.")
    assert "História" in [s["heading"] for s in berlim["sections"]]  # type: ignore[attr-defined]
    assert all(r["title"] not in {"Berlin", "Hogwarts", "Região de Wu"} for r in rows)


@pytest.mark.parametrize("corpus", [REALISTIC, BENCH_SMALL])
def test_fast_path_matches_parser(corpus: Path) -> None:
    """The regex path is an optimisation: identical output to mwparserfromhell where it applies."""
    eligible = 0
    for page in iter_pages(corpus):
        if page.ns != 0 or page.redirect:
            continue
        for _, body in wikitext.split_fragments(page.text):
            if not wikitext_fast.fast_eligible(body):
                continue
            eligible += 1
            fast = wikitext.normalise(wikitext_fast.clean_fast(body))
            assert fast == wikitext.normalise(wikitext.clean_slow(body)), page.title
    assert eligible > 150


def test_fast_path_rejects_nesting() -> None:
    assert wikitext_fast.fast_eligible("a [[b|c]] {{Referências}} <ref>x</ref>")
    assert not wikitext_fast.fast_eligible("a {{b|{{c}}}}")
    assert not wikitext_fast.fast_eligible("a <div>b</div>")
    assert not wikitext_fast.fast_eligible("a &nbsp; b")
    assert not wikitext_fast.fast_eligible("'''a'' b")


# ---- dump formats and selection ----


def test_compressed_and_namespaces_give_same_articles(tmp_path: Path) -> None:
    xml = make_dump(TINY_PAGES)
    (tmp_path / "d.xml").write_text(xml, encoding="utf-8")
    (tmp_path / "d.xml.bz2").write_bytes(bz2.compress(xml.encode()))
    (tmp_path / "d.xml.gz").write_bytes(gzip.compress(xml.encode()))
    half = len(xml) // 2
    cut = xml.index("<page>", half)  # multistream bz2: two concatenated streams
    (tmp_path / "m.xml.bz2").write_bytes(bz2.compress(xml[:cut].encode()) + bz2.compress(xml[cut:].encode()))
    (tmp_path / "old.xml").write_text(make_dump(TINY_PAGES, ns_version="0.3"), encoding="utf-8")
    expected = list(iter_articles(tmp_path / "d.xml"))
    assert [a.title for a in expected] == ["Berlim", "Lisboa"]
    for name in ("d.xml.bz2", "d.xml.gz", "m.xml.bz2", "old.xml"):
        assert list(iter_articles(tmp_path / name)) == expected, name


def test_redirect_variants_and_skips(tmp_path: Path) -> None:
    pages: list[dict[str, object]] = [
        {"title": "R1", "id": 1, "text": "#REDIRECT [[A]]"},
        {"title": "R2", "id": 2, "text": "#redirecionamento[[A]]"},
        {"title": "R3", "id": 3, "text": "  #Redirecionamento [[A#b]]"},
        {"title": "R4", "id": 4, "text": "Texto", "redirect": "A"},
        {"title": "Vazio", "id": 5, "text": ""},
        {"title": "Só categoria", "id": 6, "text": "[[Categoria:X]]"},
        {"title": "Estranho", "id": 7, "ns": 9999, "text": "x"},
        {"title": "A", "id": 8, "text": "O #REDIRECT no meio não conta."},
    ]
    dump = tmp_path / "d.xml"
    dump.write_text(make_dump(pages), encoding="utf-8")
    stats = ingest(dump, tmp_path / "o.jsonl")
    assert (stats.pages, stats.redirects, stats.empty, stats.other_namespace, stats.articles) == (
        8,
        4,
        2,
        1,
        1,
    )
    assert [r["title"] for r in _read_jsonl(tmp_path / "o.jsonl")] == ["A"]


def test_article_roundtrip_and_jsonl_source(tiny_dump: Path, tmp_path: Path) -> None:
    a = Article(7, "Ação", "x\n\ny", (Section("", "x"), Section("Seção", "y")))
    assert Article.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    out = tmp_path / "a.jsonl"
    ingest(tiny_dump, out)
    from_dump = list(iter_articles(tiny_dump))
    assert list(iter_articles(out)) == from_dump
    assert list(iter_corpus([out, tiny_dump])) == from_dump * 2
    assert [x.title for x in iter_corpus([out, tiny_dump], limit=3)] == ["Berlim", "Lisboa", "Berlim"]
    assert len(list(iter_articles(out, limit=1))) == 1


def test_bad_jsonl_names_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"id": 1, "title": "A", "text": "x", "sections": []}\n\n{"id": 2, "title"\n', encoding="utf-8"
    )
    with pytest.raises(BenchError, match=r"a\.jsonl:3: bad article line"):
        list(iter_articles(path))
    path.write_text('{"id": "x", "title": "A"}\n', encoding="utf-8")
    with pytest.raises(BenchError, match=r"a\.jsonl:1:"):
        list(iter_articles(path))


def test_limit_and_workers(tmp_path: Path) -> None:
    rng = random.Random(0)
    pages: list[dict[str, object]] = [
        {"title": f"Página {i}", "id": i, "text": f"'''P{i}''' [[x|y]] {rng.random()}\n== S ==\nç {i}"}
        for i in range(1, 200)
    ]
    dump = tmp_path / "d.xml"
    dump.write_text(make_dump(pages), encoding="utf-8")
    s1 = ingest(dump, tmp_path / "one.jsonl")
    s2 = ingest(dump, tmp_path / "two.jsonl", workers=2)
    assert s1.articles == s2.articles == 199
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    for workers in (1, 2):
        s3 = ingest(dump, tmp_path / "lim.jsonl", workers=workers, limit=5)
        assert s3.articles == 5 and s3.limited and len(_read_jsonl(tmp_path / "lim.jsonl")) == 5


# ---- bad input ----


def _big_dump(n: int = 400) -> str:
    rng = random.Random(1)
    words = ["casa", "rio", "ação", "coração", "lisboa", "tejo", "berlim", "ponte", "serra", "mar"]
    pages: list[dict[str, object]] = [
        {
            "title": f"P{i}",
            "id": i,
            "text": " ".join(rng.choice(words) + str(rng.randrange(10**6)) for _ in range(900)),
        }
        for i in range(1, n)
    ]
    return make_dump(pages)


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_bz2_keeps_whole_lines(tmp_path: Path, workers: int) -> None:
    data = bz2.compress(_big_dump().encode())
    dump = tmp_path / "t.xml.bz2"
    dump.write_bytes(data[: int(len(data) * 0.7)])
    out = tmp_path / "o.jsonl"
    out.write_text('{"previous": 1}\n', encoding="utf-8")
    with pytest.raises(BenchError, match=r"t\.xml\.bz2: truncated or corrupt compressed data"):
        ingest(dump, out, workers=workers)
    assert out.read_text(encoding="utf-8") == '{"previous": 1}\n'  # the previous output is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "t.xml.bz2"]  # no temp file left


def test_malformed_xml_names_line_and_page(tmp_path: Path) -> None:
    xml = make_dump(TINY_PAGES).replace("<title>Lisboa</title>", "<title>Lisboa</titel>")
    dump = tmp_path / "m.xml"
    dump.write_text(xml, encoding="utf-8")
    with pytest.raises(
        BenchError, match=r"m\.xml:\d+: malformed XML after page 'Predefinição:Info' \(id 3\)"
    ):
        list(iter_pages(dump))


def test_non_utf8_names_line(tmp_path: Path) -> None:
    xml = make_dump(TINY_PAGES).encode().replace(b"capital de", b"capital \xe9 de")
    dump = tmp_path / "u.xml"
    dump.write_bytes(xml)
    with pytest.raises(BenchError, match=r"u\.xml:\d+: malformed XML .*UTF-8"):
        ingest(dump, tmp_path / "o.jsonl")


LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE mediawiki [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    + ']>\n<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/"><page><title>A</title><ns>0</ns>'
    "<id>1</id><revision><text>&i;</text></revision></page></mediawiki>"
)
XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE mediawiki [<!ENTITY x SYSTEM "file:///etc/passwd">'
    '<!ENTITY y SYSTEM "http://127.0.0.1:9/x">]>\n<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/">'
    "<page><title>A</title><ns>0</ns><id>1</id><revision><text>&x;&y;</text></revision></page></mediawiki>"
)


@pytest.mark.parametrize("doc", [LAUGHS, XXE, LAUGHS.replace("?>\n", "?>\n<!--" + "c" * 70000 + "-->\n")])
def test_entity_attacks_are_refused(tmp_path: Path, doc: str) -> None:
    dump = tmp_path / "evil.xml"
    dump.write_text(doc, encoding="utf-8")
    with pytest.raises(BenchError, match=r"evil\.xml: (refusing a DTD|no root element)"):
        list(iter_pages(dump))


def test_undefined_entity_is_an_error_not_a_fetch(tmp_path: Path) -> None:
    dump = tmp_path / "e.xml"
    dump.write_text(make_dump(TINY_PAGES).replace("Fundada", "&passwd;"), encoding="utf-8")
    with pytest.raises(BenchError, match=r"e\.xml:\d+: malformed XML.*passwd"):
        list(iter_pages(dump))


def test_unknown_xml_namespace_and_root(tmp_path: Path) -> None:
    dump = tmp_path / "n.xml"
    dump.write_text(
        make_dump(TINY_PAGES).replace("mediawiki.org/xml/export-0.11/", "example.org/x/"), "utf-8"
    )
    with pytest.raises(BenchError, match=r"n\.xml:\d+: unknown XML namespace 'http://www.example.org/x/'"):
        list(iter_pages(dump))
    dump.write_text("<html><body>no</body></html>", encoding="utf-8")
    with pytest.raises(BenchError, match=r"root element <html> is not a MediaWiki export"):
        list(iter_pages(dump))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="file not found"):
        list(iter_articles(tmp_path / "nope.xml.bz2"))


def test_cli_ingest(tiny_dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl"
    assert main(["ingest", str(tiny_dump), "-o", str(out), "--limit", "1"]) == 0
    assert "articles written 1" in capsys.readouterr().out
    assert len(_read_jsonl(out)) == 1
    (tmp_path / "bad.xml").write_text("<mediawiki><page>", encoding="utf-8")
    assert main(["ingest", str(tmp_path / "bad.xml"), "-o", str(out)]) == 2
    assert "malformed XML" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fragment", "eligible", "expected"),
    [
        ("E=mc<sup>2</sup> e H<sub>2</sub>O <small>(pequeno)</small>", True, "E=mc2 e H2O (pequeno)"),
        ('a <span style="x">b</span>', False, "a b"),  # quoted attributes: the parser decides
        ("<small>[[Lisboa|''capital'']]</small>", True, "capital"),
        ("''T<sub>b'</sub>''", False, "Tb'"),  # a lone quote at a tag boundary
        ("''[[Île d'amour, L']]'' (1928)", False, "Île d'amour, L' (1928)"),  # the fast path lost the "'"
        ("''[['Til Death]]''", False, "'Til Death"),
        ("[[Ficheiro:x.png|thumb|<sup>[</sup>]]]\n\nTexto.", False, "]\n\nTexto."),  # as the parser reads it
        (
            "a\n=21 = 3 cal\nb",
            False,
            "a\n3 cal\nb",
        ),  # "=21 =" parses as a heading: lines opening "=" go there
    ],
)
def test_fast_path_inline_tags_and_quote_edges(fragment: str, eligible: bool, expected: str) -> None:
    assert wikitext_fast.fast_eligible(fragment) is eligible
    assert wikitext.clean_fragment(fragment)[0] == expected
    assert wikitext.normalise(wikitext.clean_slow(fragment)) == expected


@given(st.text(alphabet=" \t\u00a0\u2009\u200b\nab", max_size=24))
def test_whitespace_rules_match_the_simple_definition(text: str) -> None:
    """The fast whitespace regexes equal "collapse every blank run, then trim blanks around newlines"."""
    simple = re.sub(r" *\n *", "\n", re.sub(r"[ \t\u00a0\u2009\u200b]+", " ", text))
    assert wikitext._SPACE_NL.sub("\n", wikitext._SPACES.sub(" ", text)) == simple


@pytest.mark.slow
@pytest.mark.skipif(not PTWIKI_SAMPLE.exists(), reason="shared ptwiki sample absent")
def test_fast_inline_tag_path_matches_parser_on_ptwiki_sample() -> None:
    """Every fast-eligible fragment with an inline tag in the 27k-page sample cleans exactly as the parser."""
    checked = 0
    for page in iter_pages(PTWIKI_SAMPLE):
        if page.ns != 0 or page.redirect:
            continue
        for _, body in wikitext.split_fragments(page.text):
            if (
                "<" not in body
                or not wikitext_fast._INLINE_TAG.search(body)
                or not wikitext_fast.fast_eligible(body)
            ):
                continue
            text, used_parser = wikitext.clean_fragment(body)
            if not used_parser:
                checked += 1
                assert text == wikitext.normalise(wikitext.clean_slow(body)), page.title
    assert checked > 3000
