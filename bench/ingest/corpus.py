"""Ingest stage: stream a MediaWiki XML dump (.xml, .xml.bz2, .xml.gz) into articles JSONL.

Pages come from :func:`bench.ingest.dump.iter_pages` (hardened streaming ``iterparse``, constant memory).
Cleaning (``bench.ingest.wikitext``) runs in-process or, with ``workers > 1``, in a process pool fed with
bounded
in-flight batches. Only namespace-0, non-redirect pages become articles.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import IO

from bench.config import BenchError, Config
from bench.core.pool import ordered_map
from bench.ingest.articles import Article, IngestStats, Section, clean_batch, filter_pages, make_article
from bench.ingest.dump import iter_pages
from bench.io import crash_point

__all__ = [
    "Article",
    "IngestStats",
    "Section",
    "corpus_articles",
    "ensure_articles",
    "ingest",
    "ingest_into",
    "iter_articles",
    "iter_corpus",
    "make_article",
]

log = logging.getLogger(__name__)

BATCH_PAGES = 64


def article_pages(path: Path, stats: IngestStats, prefetch: bool = False) -> Iterator[tuple[int, str, str]]:
    return filter_pages(iter_pages(path, stats, prefetch), stats)


def _batches(pages: Iterator[tuple[int, str, str]]) -> Iterator[list[tuple[int, str, str]]]:
    batch: list[tuple[int, str, str]] = []
    for page in pages:
        batch.append(page)
        if len(batch) >= BATCH_PAGES:
            yield batch
            batch = []
    if batch:
        yield batch


def _cleaned(path: Path, stats: IngestStats, workers: int) -> Generator[list[tuple[str | None, int]]]:
    """Cleaned batches in dump order; with workers > 1 at most 2×workers batches are in flight."""
    if workers <= 1:
        for batch in _batches(article_pages(path, stats)):
            yield clean_batch(batch)
        return
    batches = ((batch,) for batch in _batches(article_pages(path, stats, prefetch=True)))
    # A dump error while reading (truncated, corrupt): what was already read is still written, then reported.
    yield from ordered_map(clean_batch, batches, workers, what=f"ingest {path}", drain_on=(BenchError,))


def ingest(
    dump: Path, out: Path, workers: int = 1, limit: int = 0, index: Path | None = None, use_index: bool = True
) -> IngestStats:
    """Write one JSON article per line to ``out``, atomically: ``out`` is replaced only when the whole dump
    was read; on any error (missing, empty, non-XML or truncated dump) its previous content stays and no
    temp file is left.

    A multistream dump is read stream by stream in ``workers`` processes through its index (``index``, or
    found beside the dump by Wikimedia's naming) unless ``use_index`` is false; the output is the same.
    """
    from bench.io import atomic_open

    dump, out = Path(dump), Path(out)
    if not dump.is_file():
        raise BenchError(f"{dump}: file not found")
    with atomic_open(out, "w") as fh:
        stats = ingest_into(fh, dump, workers, limit, index, use_index)
    log.info("ingest %s → %s: %s", dump, out, stats.summary())
    return stats


def ingest_into(
    fh: IO[str],
    dump: Path,
    workers: int = 1,
    limit: int = 0,
    index: Path | None = None,
    use_index: bool = True,
) -> IngestStats:
    """Append ``dump``'s articles to the open text file ``fh`` (see :func:`ingest`); returns the counters."""
    from bench.ingest import multistream

    stats = IngestStats(workers=max(1, workers))
    index = (Path(index) if index else multistream.find_index(dump)) if use_index else None
    start = time.perf_counter()
    if index is not None:
        source = multistream.cleaned(dump, index, stats, stats.workers)
    else:
        source = _cleaned(dump, stats, stats.workers)
    with contextlib.closing(source):  # stopping at `limit` cancels the workers' queued jobs at once
        _write(fh, source, stats, limit)
    stats.elapsed_s = time.perf_counter() - start
    return stats


def _write(
    fh: IO[str], source: Iterator[list[tuple[str | None, int]]], stats: IngestStats, limit: int
) -> None:
    for results in source:
        for line, slow in results:
            stats.parser_fragments += slow
            if line is None:
                stats.empty += 1
                continue
            fh.write(line)
            crash_point("ingest.article")
            stats.articles += 1
            if limit and stats.articles >= limit:
                stats.limited = True
                break
        if stats.limited:
            break


def looks_like_jsonl(path: Path) -> bool:
    if path.suffix in {".jsonl", ".json", ".ndjson"}:
        return True
    if path.suffix in {".xml", ".bz2", ".gz"}:
        return False
    with path.open("rb") as fh:
        return fh.read(64).lstrip().startswith(b"{")


def _iter_jsonl_articles(path: Path) -> Iterator[Article]:
    with path.open("rb") as fh:
        for lineno, raw_line in enumerate(fh, 1):
            if not raw_line.strip():
                continue
            try:
                obj = json.loads(raw_line.decode("utf-8"))
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                yield Article.from_dict(obj)
            except UnicodeDecodeError as exc:
                raise BenchError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason})") from exc
            except ValueError as exc:  # JSONDecodeError is a ValueError
                raise BenchError(f"{path}:{lineno}: bad article line: {exc}") from exc


def iter_articles(path: str | Path, limit: int = 0) -> Iterator[Article]:
    """Articles from a dump (.xml/.xml.bz2/.xml.gz, cleaned on the fly) or an articles JSONL, streamed."""
    path = Path(path)
    if not path.exists():
        raise BenchError(f"{path}: file not found")
    if looks_like_jsonl(path):
        source: Iterator[Article] = _iter_jsonl_articles(path)
    else:
        source = (a for pid, t, w in article_pages(path, IngestStats()) if (a := make_article(pid, t, w)[0]))
    for n, article in enumerate(source, 1):
        yield article
        if limit and n >= limit:
            return


def iter_corpus(paths: Sequence[Path], limit: int = 0) -> Iterator[Article]:
    """Chain several dumps/JSONL files (callers pass ``cfg.corpus_paths()``); ``limit`` counts over all."""
    n = 0
    for path in paths:
        for article in iter_articles(path):
            yield article
            n += 1
            if limit and n >= limit:
                return


def ensure_articles(cfg: Config) -> Path:
    """The articles artifact of ``cfg`` (every corpus file, ``ingest.limit`` over all), ingested once.

    Index and fine-tune both read this file, so they see the same articles; its name is the artifact key
    (corpus contents, limit, cleaner code: :func:`bench.artifacts.articles`), beside a ``.json`` recording
    the inputs and the ingest counters. Written to a temporary name and renamed: a failed or killed ingest
    leaves no file behind.
    """
    from bench import artifacts
    from bench.io import atomic_open, atomic_write_json

    art = artifacts.articles(cfg)
    if art.path.exists():
        log.info("articles %s: cached (%s)", art.path, ", ".join(str(p) for p in cfg.corpus_paths()))
        return art.path
    limit, written, summaries = cfg.ingest.limit, 0, []
    with atomic_open(art.path, "w") as out:  # two builders never share a temp file; none is left on error
        for path in cfg.corpus_paths():
            left = limit - written if limit else 0
            if looks_like_jsonl(path):
                n = 0
                for article in iter_articles(path, limit=left):
                    out.write(json.dumps(article.to_dict(), ensure_ascii=False) + "\n")
                    n += 1
                written += n
                summaries.append({"path": str(path), "articles": n})
            else:
                if not path.is_file():
                    raise BenchError(f"{path}: file not found")
                stats = ingest_into(out, path, workers=cfg.ingest.workers, limit=left)
                written += stats.articles
                summaries.append(
                    {
                        "path": str(path),
                        "articles": stats.articles,
                        "summary": stats.summary(),
                        "seconds": stats.elapsed_s,
                    }
                )
            if limit and written >= limit:
                break
        if written == 0:
            raise BenchError(f"corpus {cfg.corpus}: no article with text (nothing to index or train on)")
        atomic_write_json(
            art.path.with_suffix(".json"), {**art.inputs, "articles": written, "files": summaries}
        )
    log.info("articles %s: %d articles from %s", art.path, written, cfg.corpus)
    return art.path


def corpus_articles(cfg: Config) -> Iterator[Article]:
    """The articles every stage reads: the articles artifact, ingested first when missing."""
    return iter_articles(ensure_articles(cfg))
