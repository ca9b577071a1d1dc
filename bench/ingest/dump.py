"""Stream the ``<page>`` elements of a MediaWiki XML export (.xml, .xml.bz2, .xml.gz) in constant memory.

The XML is parsed with a hardened, streaming ``lxml.etree.iterparse``: DTDs and entity declarations are
refused before lxml sees the document, entities are not resolved, the network is off, libxml2's default size
limits stay on, and every ``<page>`` is cleared once read. Errors name the file, the line and the last good
page.
"""

from __future__ import annotations

import bz2
import gzip
import queue
import re
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from lxml import etree

from bench.config import BenchError

_REDIRECT = re.compile(r"\s*#\s*(?:redirect|redirecionamento)\s*:?\s*\[\[", re.I)
_EXPORT_NS = re.compile(r"^\{http://www\.mediawiki\.org/xml/export-0\.\d+/\}")
_PROLOG_BYTES = 1 << 16


class PageCounts(Protocol):
    """What :func:`iter_pages` updates as it reads (``bench.ingest.articles.IngestStats`` has both)."""

    pages: int
    bytes_in: int


@dataclass
class ReadCounts:
    pages: int = 0
    bytes_in: int = 0  # uncompressed XML bytes read


@dataclass(frozen=True)
class RawPage:
    id: int
    title: str
    ns: int
    text: str
    redirect: bool


class _CountingReader:
    """File-like: replays a peeked prefix, counts bytes, turns decompression errors into BenchError."""

    def __init__(self, path: Path | str, raw: IO[bytes], prefix: bytes) -> None:
        self.path, self.raw, self.prefix, self.count = path, raw, prefix, 0

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            data, self.prefix = self.prefix, b""
        else:
            try:
                data = self.raw.read(size if size and size > 0 else 1 << 16)
            except (EOFError, OSError, zlib.error) as exc:
                raise BenchError(
                    f"{self.path}: truncated or corrupt compressed data after {self.count:,} bytes ({exc})"
                ) from exc
        self.count += len(data)
        return data


class _Prefetch:
    """Decompresses in a background thread (bz2/zlib release the GIL) into a bounded queue of 1 MiB chunks."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.stop = raw, threading.Event()
        self.chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=4)
        self.thread = threading.Thread(target=self._fill, name="ingest-decompress", daemon=True)
        self.thread.start()

    def _fill(self) -> None:
        while not self.stop.is_set():
            try:
                item: bytes | BaseException = self.raw.read(1 << 20)
            except BaseException as exc:
                item = exc
            while not self.stop.is_set():
                try:
                    self.chunks.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def read(self, size: int = -1) -> bytes:
        while True:  # never waits forever: a decompress thread that died without a word is an error
            try:
                item = self.chunks.get(timeout=1.0)
                break
            except queue.Empty:
                if not self.thread.is_alive() and self.chunks.empty():
                    raise BenchError("ingest: the decompress thread stopped without a result") from None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.raw.close()


def open_raw(path: Path) -> IO[bytes]:
    if not path.exists():
        raise BenchError(f"{path}: file not found")
    with path.open("rb") as fh:
        magic = fh.read(3)
    if magic == b"BZh":
        return bz2.open(path, "rb")  # handles multistream .bz2 (concatenated streams)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def check_prolog(path: Path | str, head: bytes) -> None:
    """Reject DTDs (entity expansion / XXE) and non-MediaWiki documents before lxml sees them."""
    root = re.search(rb"<(?![?!])", head)
    if root is None and len(head) >= _PROLOG_BYTES:
        raise BenchError(
            f"{path}: no root element in the first {_PROLOG_BYTES // 1024} KiB (not a MediaWiki export)"
        )
    prolog = head[: root.start()] if root else head
    if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
        raise BenchError(f"{path}: refusing a DTD / entity declarations (MediaWiki exports have none)")
    if root and not re.match(rb"<(?:\w+:)?mediawiki\b", head[root.start() :]):
        name = re.match(rb"<([^\s>/]*)", head[root.start() :])
        tag = name.group(1).decode("utf-8", "replace") if name else "?"
        raise BenchError(f"{path}: root element <{tag}> is not a MediaWiki export <mediawiki>")


def iter_pages(path: Path, stats: PageCounts | None = None, prefetch: bool = False) -> Iterator[RawPage]:
    """Stream every <page> of a dump (any export-0.x namespace) with constant memory.

    ``prefetch`` decompresses in a background thread, overlapping it with parsing (used with workers > 1).
    """
    path = Path(path)
    raw: Any = open_raw(path)
    if prefetch:
        raw = _Prefetch(raw)
    try:
        yield from parse_pages(path, raw, stats)
    finally:
        raw.close()


def parse_pages(path: Path | str, raw: IO[bytes], stats: PageCounts | None = None) -> Iterator[RawPage]:
    """The <page>s of an uncompressed MediaWiki XML byte stream; ``path`` only labels errors.

    ``bench.ingest.multistream`` feeds one bz2 stream at a time (wrapped in the root element) through here, so
    both readers share the prolog check, the parser settings and the page extraction.
    """
    stats = stats if stats is not None else ReadCounts()
    try:
        head = raw.read(_PROLOG_BYTES)
    except (EOFError, OSError, zlib.error) as exc:
        raise BenchError(f"{path}: truncated or corrupt compressed data ({exc})") from exc
    check_prolog(path, head)
    reader = _CountingReader(path, raw, head)
    parser_events = etree.iterparse(
        reader,
        events=("end",),
        tag="{*}page",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,  # keep libxml2's limits (10 MB text node, depth 256): bounded memory
        remove_comments=True,
        remove_pis=True,
    )
    last = "before the first page"
    try:
        for _, elem in parser_events:
            page = _read_page(path, elem)
            last = f"after page {page.title!r} (id {page.id})"
            stats.pages += 1
            stats.bytes_in = reader.count
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            if parent is not None:
                while elem.getprevious() is not None:
                    del parent[0]
            yield page
    except etree.XMLSyntaxError as exc:
        log_entries: list[Any] = list(exc.error_log)  # type: ignore[call-overload]
        fatal = [e for e in log_entries if e.level_name == "FATAL"]
        line: int | str = fatal[-1].line if fatal else (exc.lineno or "?")
        msg = (fatal[-1].message if fatal else str(exc.msg or exc)).split("\n")[0]
        if "encoding" in msg.lower() or "utf-8" in msg.lower():
            msg += " (the dump must be UTF-8)"
        raise BenchError(f"{path}:{line}: malformed XML {last}: {msg}") from exc
    stats.bytes_in = reader.count


def _read_page(path: Path | str, elem: Any) -> RawPage:
    tag = elem.tag
    m = _EXPORT_NS.match(tag) if tag.startswith("{") else None
    if tag.startswith("{") and m is None:
        raise BenchError(f"{path}:{elem.sourceline}: unknown XML namespace {tag.split('}')[0][1:]!r}")
    prefix = m.group(0) if m else ""
    title = elem.findtext(prefix + "title") or ""
    id_text = elem.findtext(prefix + "id")
    ns_text = elem.findtext(prefix + "ns")
    try:
        page_id = int(id_text) if id_text is not None else -1
        ns = int(ns_text) if ns_text is not None else (0 if ":" not in title else -1)
    except ValueError as exc:
        raise BenchError(f"{path}:{elem.sourceline}: page {title!r}: bad <id>/<ns> ({exc})") from exc
    revisions = elem.findall(prefix + "revision")
    text = (revisions[-1].findtext(prefix + "text") or "") if revisions else ""
    redirect = elem.find(prefix + "redirect") is not None or bool(_REDIRECT.match(text))
    return RawPage(page_id, title, ns, text, redirect)
