"""Section-aware, token-aware, overlapping chunking of articles.

Token counts use :func:`approx_tokens`, a cheap approximation calibrated against the multilingual-e5
(XLM-R sentencepiece) tokenizer: on FaQuAD passages it stays close to ``E5.token_count`` (asserted in
tests/test_e5_torch.py: within 10 % on average, 25 % per passage).
Using one tokenizer-independent count keeps the chunk set identical across embedders, so embedders are
compared on the same passages (the index directory hash still includes the embedder).

Chunks never cross a section boundary. Within a section, langchain's ``RecursiveCharacterTextSplitter``
splits on paragraphs, lines, sentences, then words, with ``chunk_overlap`` tokens of overlap.
The text that is embedded is :meth:`Chunk.embed_text`: ``"<title> — <section>\\n<text>"`` (the section is
left out for the lead), so a chunk that never names its subject still carries it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_text_splitters import RecursiveCharacterTextSplitter

from bench.config import BenchError

log = logging.getLogger(__name__)

_PIECES = re.compile(r"\w+|[^\w\s]")
SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


class SectionLike(Protocol):
    """What chunking needs from ``bench.ingest.corpus.Section``."""

    @property
    def heading(self) -> str: ...
    @property
    def text(self) -> str: ...


class ArticleLike(Protocol):
    """What chunking needs from ``bench.ingest.corpus.Article``."""

    @property
    def id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def sections(self) -> Sequence[SectionLike]: ...


def approx_tokens(text: str) -> int:
    """Approximate sentencepiece token count: one per punctuation mark, 1 + (len-1)//7 per word."""
    return sum(1 + (len(p) - 1) // 7 if p[0].isalnum() or p[0] == "_" else 1 for p in _PIECES.findall(text))


@dataclass(frozen=True)
class Chunk:
    chunk_id: str  # "<article_id>-<n>"
    article_id: int
    title: str
    section: str  # "" for the lead
    text: str
    n: int = 0  # position of the chunk within its article

    def to_payload(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "article_id": self.article_id,
            "title": self.title,
            "section": self.section,
            "text": self.text,
        }

    def embed_text(self) -> str:
        head = f"{self.title} — {self.section}" if self.section else self.title
        return f"{head}\n{self.text}"


class Chunker:
    """Split articles into :class:`Chunk`; ``chunk_tokens``/``chunk_overlap`` in approximate tokens."""

    def __init__(
        self,
        chunk_tokens: int,
        chunk_overlap: int,
        count_tokens: Callable[[str], int] = approx_tokens,
    ) -> None:
        if chunk_tokens < 8:
            raise BenchError(f"index.chunk_tokens must be at least 8, got {chunk_tokens}")
        if not 0 <= chunk_overlap < chunk_tokens:
            raise BenchError(
                f"index.chunk_overlap must be in [0, chunk_tokens={chunk_tokens}), got {chunk_overlap}"
            )
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.count_tokens = count_tokens
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=chunk_overlap,
            length_function=count_tokens,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
        )

    def sections_of(self, article: ArticleLike) -> list[tuple[str, str]]:
        """(heading, text) pairs; the whole text as the lead when the article has no sections."""
        pairs = [(str(s.heading).strip(), str(s.text)) for s in article.sections if str(s.text).strip()]
        if not pairs and article.text.strip():
            pairs = [("", article.text)]
        return pairs

    def chunk_article(self, article: ArticleLike) -> list[Chunk]:
        chunks: list[Chunk] = []
        for heading, text in self.sections_of(article):
            for piece in self._splitter.split_text(text.strip()):
                if not piece.strip():
                    continue
                n = len(chunks)
                chunks.append(
                    Chunk(
                        chunk_id=f"{article.id}-{n}",
                        article_id=int(article.id),
                        title=article.title,
                        section=heading,
                        text=piece.strip(),
                        n=n,
                    )
                )
        return chunks

    def iter_chunks(
        self, articles: Iterable[ArticleLike], stats: dict[str, int] | None = None
    ) -> Iterator[Chunk]:
        """Chunks of every article in order; articles without text are skipped with a warning."""
        stats = stats if stats is not None else {}
        for article in articles:
            stats["articles"] = stats.get("articles", 0) + 1
            chunks = self.chunk_article(article)
            if not chunks:
                stats["empty_articles"] = stats.get("empty_articles", 0) + 1
                log.warning("article %s (%r) has no text: skipped", article.id, article.title)
                continue
            stats["chunks"] = stats.get("chunks", 0) + len(chunks)
            yield from chunks
