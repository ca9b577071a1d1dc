"""Articles: the records ingest writes (:class:`Article`, :class:`Section`), the ingest counters, and the
per-page step shared by the single-stream (:mod:`bench.ingest.corpus`) and multistream
(:mod:`bench.ingest.multistream`)
readers: keep namespace-0, non-redirect, non-empty pages, clean their wikitext (:mod:`bench.ingest.wikitext`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.ingest.dump import RawPage
from bench.ingest.wikitext import clean_page


@dataclass(frozen=True)
class Section:
    heading: str
    text: str


@dataclass(frozen=True)
class Article:
    id: int
    title: str
    text: str
    sections: tuple[Section, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "text": self.text,
            "sections": [{"heading": s.heading, "text": s.text} for s in self.sections],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Article:
        try:
            sections = tuple(Section(str(s["heading"]), str(s["text"])) for s in d.get("sections") or [])
            return cls(int(d["id"]), str(d["title"]), str(d["text"]), sections)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an article record ({type(exc).__name__}: {exc})") from exc


@dataclass
class IngestStats:
    pages: int = 0
    articles: int = 0
    redirects: int = 0
    other_namespace: int = 0
    empty: int = 0
    parser_fragments: int = 0  # fragments that needed mwparserfromhell (the rest took the regex path)
    bytes_in: int = 0  # uncompressed XML bytes read
    elapsed_s: float = 0.0
    workers: int = 1
    limited: bool = field(default=False)
    streams: int = 0  # bz2 streams read through a multistream index (0: read as one stream)

    @property
    def mb_per_s(self) -> float:
        return self.bytes_in / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        return (
            f"pages seen {self.pages:,}; articles written {self.articles:,}; skipped: "
            f"{self.redirects:,} redirects, {self.other_namespace:,} other-namespace, {self.empty:,} empty; "
            f"{self.bytes_in / 1e6:.1f} MB XML in {self.elapsed_s:.1f} s ({self.mb_per_s:.2f} MB/s, "
            f"{self.workers} worker{'s' if self.workers != 1 else ''}); "
            f"{self.parser_fragments:,} fragments via mwparserfromhell"
            + (f"; {self.streams:,} bz2 streams read through the index" if self.streams else "")
            + (" (stopped at --limit)" if self.limited else "")
        )


def clean_batch(batch: list[tuple[int, str, str]]) -> list[tuple[str | None, int]]:
    """(id, title, wikitext) → (JSON line or None when empty, parser fragments). Runs in pool workers."""
    out: list[tuple[str | None, int]] = []
    for page_id, title, wikitext in batch:
        article, slow = make_article(page_id, title, wikitext)
        line = json.dumps(article.to_dict(), ensure_ascii=False) + "\n" if article else None
        out.append((line, slow))
    return out


def make_article(page_id: int, title: str, wikitext: str) -> tuple[Article | None, int]:
    """Clean one page; None when nothing is left."""
    pairs, slow = clean_page(wikitext)
    if not pairs:
        return None, slow
    sections = tuple(Section(h, t) for h, t in pairs)
    return Article(page_id, title, "\n\n".join(t for _, t in pairs), sections), slow


def filter_pages(pages: Iterable[RawPage], stats: IngestStats) -> Iterator[tuple[int, str, str]]:
    """(id, title, wikitext) of the namespace-0, non-redirect, non-empty pages; counts the others."""
    for page in pages:
        if page.ns != 0:
            stats.other_namespace += 1
        elif page.redirect:
            stats.redirects += 1
        elif not page.text.strip():
            stats.empty += 1
        else:
            yield page.id, page.title, page.text
