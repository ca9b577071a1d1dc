"""Wikimedia multistream dumps: read the bz2 streams by offset in worker processes; build a multistream copy.

A multistream dump (``…-multistream.xml.bz2``) is concatenated bz2 streams: the first holds the
``<mediawiki>`` open tag and ``<siteinfo>``, each following one ~100 ``<page>``s, the last the closing
``</mediawiki>``. Its index (``…-multistream-index.txt.bz2``) has one ``offset:page_id:title`` line per page,
offset = the byte offset of the page's stream. Each worker seeks to a stream, decompresses it, wraps it in
the root element, parses it with :func:`bench.ingest.dump.parse_pages` and cleans it like the single-stream
path,
so decompression parallelises too and the articles JSONL is byte-identical.

Every stream is checked: it must start with a bz2 header at its indexed offset, end exactly where the next
indexed stream starts, and hold exactly the page ids the index lists for it; anything else is a
``BenchError`` naming the dump, the stream (number and offset) and the index line.

Build a copy: ``python -m bench.ingest.multistream build SRC.xml[.bz2|.gz] OUTDIR [--pages-per-stream 100]``.
"""

from __future__ import annotations

import argparse
import bz2
import io
import logging
import re
import sys
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.config import BenchError
from bench.core.pool import ordered_map
from bench.ingest.articles import IngestStats, clean_batch, filter_pages
from bench.ingest.dump import check_prolog, parse_pages
from bench.ingest.multistream_build import PAGES_PER_STREAM, build

log = logging.getLogger(__name__)

INDEX_SUFFIXES = ("-index.txt.bz2", "-index.txt")
_ROOT = re.compile(rb"<(?:\w+:)?mediawiki\b[^>]*>")
_CLOSE = b"</mediawiki>"
_STREAM_START = re.compile(
    rb"BZh[1-9](?:\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)"
)  # + block/end magic
Cleaned = list[tuple[str | None, int]]


@dataclass(frozen=True)
class Stream:
    number: int  # 1-based, in index order
    offset: int
    end: int  # the next stream's offset (the file size for the last one)
    page_ids: tuple[int, ...]
    line: int  # index line of its first page


def find_index(dump: Path) -> Path | None:
    """``X.xml.bz2`` → ``X-index.txt.bz2`` (or ``X-index.txt``) beside it, Wikimedia's naming; else None."""
    if not dump.name.endswith(".xml.bz2"):
        return None
    stem = dump.name[: -len(".xml.bz2")]
    return next((p for s in INDEX_SUFFIXES if (p := dump.with_name(stem + s)).exists()), None)


def read_index(index: Path, dump_size: int) -> list[Stream]:
    """Group the index lines into streams (consecutive lines with one offset); offsets must increase."""
    if not index.exists():
        raise BenchError(f"{index}: multistream index not found")
    opener: Any = bz2.open if index.name.endswith(".bz2") else open
    groups: list[tuple[int, list[int], int]] = []
    try:
        with opener(index, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
                    raise BenchError(f"{index}:{lineno}: expected 'offset:page_id:title', got {line[:80]!r}")
                offset, page_id = int(parts[0]), int(parts[1])
                if groups and offset == groups[-1][0]:
                    groups[-1][1].append(page_id)
                    continue
                if groups and offset < groups[-1][0]:
                    raise BenchError(f"{index}:{lineno}: offset {offset:,} is before the previous stream's")
                if offset >= dump_size:
                    raise BenchError(
                        f"{index}:{lineno}: offset {offset:,} is past the dump's end ({dump_size:,})"
                    )
                groups.append((offset, [page_id], lineno))
    except (EOFError, OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{index}: unreadable multistream index ({exc})") from exc
    if not groups:
        raise BenchError(f"{index}: empty multistream index")
    ends = [g[0] for g in groups[1:]] + [dump_size]
    return [
        Stream(i, off, end, tuple(ids), ln)
        for i, ((off, ids, ln), end) in enumerate(zip(groups, ends, strict=True), 1)
    ]


def check_offsets(dump: Path, index: Path, streams: list[Stream]) -> None:
    """Every indexed offset must be where a bz2 stream starts (10 bytes read per stream, before any work)."""
    with dump.open("rb") as fh:
        for s in streams:
            fh.seek(s.offset)
            if not _STREAM_START.match(fh.read(10)):
                raise BenchError(
                    f"{_where(dump, index, s, len(streams))}: no bz2 stream starts at this offset "
                    "(wrong offset in the index?)"
                )


def _decompress(fh: IO[bytes], offset: int, end: int, where: str) -> tuple[bytes, bytes]:
    """The one bz2 stream in [offset, end) → (its text, the compressed bytes after it)."""
    fh.seek(offset)
    data = fh.read(end - offset)
    if not data.startswith(b"BZh"):
        raise BenchError(f"{where}: no bz2 stream starts at this offset (wrong offset in the index?)")
    dec = bz2.BZ2Decompressor()
    try:
        text = dec.decompress(data)
    except (OSError, EOFError, ValueError) as exc:
        raise BenchError(f"{where}: corrupt bz2 data ({exc})") from exc
    if not dec.eof:
        raise BenchError(
            f"{where}: truncated: the stream does not end within its {len(data):,} bytes "
            f"(up to offset {end:,})"
        )
    return text, dec.unused_data


def _where(dump: Path | str, index: Path | str, s: Stream, n: int) -> str:
    return f"{dump}: bz2 stream {s.number:,}/{n:,} at offset {s.offset:,} (index {index}:{s.line})"


def _stream_text(dump: str, index: str, s: Stream, n: int) -> tuple[bytes, int]:
    """The stream's XML, and the size of the closing stream after it (the last one only)."""
    where = _where(dump, index, s, n)
    tail = b""
    with open(dump, "rb") as fh:
        text, rest = _decompress(fh, s.offset, s.end, where)
        if s.number < n and rest:
            raise BenchError(
                f"{where}: it ends before the next indexed offset {s.end:,} (index skips a stream?)"
            )
        if s.number == n:  # the last page stream is followed by the closing </mediawiki> stream
            try:
                tail = bz2.decompress(rest) if rest else b""
            except (OSError, EOFError, ValueError) as exc:
                raise BenchError(
                    f"{dump}: the closing stream after offset {s.offset:,} is corrupt ({exc})"
                ) from exc
            if tail.strip() != _CLOSE:
                raise BenchError(
                    f"{dump}: no closing {_CLOSE.decode()} stream after the last indexed stream "
                    f"(offset {s.offset:,}): truncated file?"
                )
    return text, len(tail)


def stream_job(dump: str, index: str, root: bytes, s: Stream, n: int) -> tuple[Cleaned, IngestStats]:
    """Decompress, parse, check and clean one stream (runs in pool workers)."""
    text, tail = _stream_text(dump, index, s, n)
    stats = IngestStats()
    label = f"{dump} (bz2 stream {s.number:,} at offset {s.offset:,})"  # XML line numbers count in the stream
    pages = list(parse_pages(label, io.BytesIO(root + text + _CLOSE), stats))
    ids = tuple(p.id for p in pages)
    if ids != s.page_ids:
        raise BenchError(
            f"{_where(dump, index, s, n)}: holds pages {_ids(ids)} but the index lists {_ids(s.page_ids)} "
            "for this offset: index and dump do not match"
        )
    stats.bytes_in = len(text) + tail
    return clean_batch(list(filter_pages(pages, stats))), stats


def _ids(ids: tuple[int, ...]) -> str:
    return f"{len(ids)} ids [{', '.join(map(str, ids[:3]))}{', …' if len(ids) > 3 else ''}]"


def _header(dump: Path, index: Path, streams: list[Stream]) -> tuple[bytes, int]:
    """The root open tag and the size of the first stream (everything before the first indexed offset)."""
    first = Stream(0, 0, streams[0].offset, (), 0)
    where = f"{dump}: header bz2 stream at offset 0 (before the index's first offset {streams[0].offset:,})"
    if streams[0].offset == 0:
        raise BenchError(
            f"{index}:{streams[0].line}: first offset 0, but a multistream dump starts with a siteinfo stream"
        )
    with dump.open("rb") as fh:
        header, rest = _decompress(fh, first.offset, first.end, where)
    if rest:
        raise BenchError(f"{where}: the header stream ends before the first indexed offset")
    check_prolog(dump, header)
    root = _ROOT.search(header)
    if root is None or b"<page" in header:
        raise BenchError(f"{where}: not a <mediawiki>/<siteinfo> header stream")
    return root.group(0), len(header)


def _merge(total: IngestStats, part: IngestStats) -> None:
    total.streams += 1
    total.pages += part.pages
    total.redirects += part.redirects
    total.other_namespace += part.other_namespace
    total.empty += part.empty
    total.bytes_in += part.bytes_in


def cleaned(dump: Path, index: Path, stats: IngestStats, workers: int) -> Generator[Cleaned]:
    """Cleaned stream batches in dump order; with workers > 1 at most 2×workers streams are in flight."""
    if not dump.exists():
        raise BenchError(f"{dump}: file not found")
    streams = read_index(index, dump.stat().st_size)
    check_offsets(dump, index, streams)
    root, stats.bytes_in = _header(dump, index, streams)
    n = len(streams)
    log.info("multistream: %s: %d bz2 streams through the index %s, %d worker(s)", dump, n, index, workers)
    jobs = ((str(dump), str(index), root, s, n) for s in streams)
    if workers <= 1:
        for job in jobs:
            lines, part = stream_job(*job)
            _merge(stats, part)
            yield lines
        return
    for lines, part in ordered_map(stream_job, jobs, workers, what=f"multistream {dump}"):
        _merge(stats, part)
        yield lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest.multistream", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write a multistream copy (+ index) of a single-stream dump")
    b.add_argument("src", type=Path)
    b.add_argument("outdir", type=Path)
    b.add_argument("--pages-per-stream", type=int, default=PAGES_PER_STREAM)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out, idx = build(args.src, args.outdir, args.pages_per_stream)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{out}\n{idx}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
