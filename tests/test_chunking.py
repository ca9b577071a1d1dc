from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from bench.config import BenchError
from bench.retrieval.chunking import Chunk, Chunker, approx_tokens


def _article(
    id_: int, title: str, sections: list[tuple[str, str]], text: str | None = None
) -> SimpleNamespace:
    secs = tuple(SimpleNamespace(heading=h, text=t) for h, t in sections)
    return SimpleNamespace(
        id=id_,
        title=title,
        text=text if text is not None else "\n\n".join(t for _, t in sections),
        sections=secs,
    )


def test_approx_tokens_counts_words_and_punctuation() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("Berlim é a capital.") == 5
    assert approx_tokens("inconstitucionalissimamente") == 1 + 26 // 7


def test_sections_are_never_crossed_and_ids_are_sequential() -> None:
    art = _article(
        7, "Lisboa", [("", "Lisboa é a capital de Portugal."), ("Geografia", "Fica na foz do Tejo.")]
    )
    chunks = Chunker(50, 10).chunk_article(art)
    assert [(c.chunk_id, c.section, c.n) for c in chunks] == [("7-0", "", 0), ("7-1", "Geografia", 1)]
    assert chunks[1].to_payload() == {
        "chunk_id": "7-1",
        "article_id": 7,
        "title": "Lisboa",
        "section": "Geografia",
        "text": "Fica na foz do Tejo.",
    }
    assert chunks[1].embed_text() == "Lisboa — Geografia\nFica na foz do Tejo."
    assert chunks[0].embed_text() == "Lisboa\nLisboa é a capital de Portugal."


def test_long_section_is_split_within_budget_with_overlap() -> None:
    sentences = [f"A frase número {i} fala sobre a cidade de Lisboa e o rio Tejo." for i in range(60)]
    art = _article(1, "Lisboa", [("História", " ".join(sentences))])
    chunks = Chunker(40, 20).chunk_article(art)
    assert len(chunks) > 5
    assert all(approx_tokens(c.text) <= 40 for c in chunks)
    assert all(c.section == "História" for c in chunks)
    # overlap in whole sentences (the splitter merges whole pieces): a chunk starts inside the previous one
    overlapping = sum(1 for a, b in itertools.pairwise(chunks) if b.text.split(".")[0] in a.text)
    assert overlapping >= len(chunks) - 2
    # nothing lost: every sentence appears in some chunk
    joined = " ".join(c.text for c in chunks)
    assert all(s.rstrip(".") in joined for s in sentences)


def test_article_without_sections_uses_text_and_empty_article_is_skipped() -> None:
    stats: dict[str, int] = {}
    arts = [_article(1, "Vazio", [], text="   "), _article(2, "Só texto", [], text="Um texto sem secções.")]
    chunks = list(Chunker(50, 0).iter_chunks(arts, stats))
    assert [c.title for c in chunks] == ["Só texto"]
    assert stats == {"articles": 2, "empty_articles": 1, "chunks": 1}
    assert isinstance(chunks[0], Chunk)


@pytest.mark.parametrize(("size", "overlap"), [(100, 100), (100, -1), (4, 0)])
def test_bad_chunk_params_raise(size: int, overlap: int) -> None:
    with pytest.raises(BenchError, match="chunk_"):
        Chunker(size, overlap)
