"""Build a Wikimedia-style multistream copy of a MediaWiki dump (``python -m bench.ingest.multistream
build``).

A header stream (root tag + ``<siteinfo>``), one bz2 stream per ``pages_per_stream`` pages, a closing
``</mediawiki>`` stream, and an index with one ``offset:page_id:title`` line per page. The pages' bytes are
copied unchanged, so the decompressed copy equals the source. Reading is in :mod:`bench.ingest.multistream`.
"""

from __future__ import annotations

import bz2
import html
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bench.config import BenchError
from bench.ingest.dump import open_raw

log = logging.getLogger(__name__)

PAGES_PER_STREAM = 100


def _split_pages(raw: IO[bytes]) -> Iterator[bytes]:
    """The header (up to the first <page>), each page (with its leading whitespace), then the rest."""
    buf, pos, header_done = b"", 0, False
    while True:
        chunk = raw.read(1 << 20)
        buf = buf[pos:] + chunk
        pos = 0
        if not header_done:
            start = buf.find(b"<page>")
            if start < 0 and chunk:
                continue
            start = len(buf) if start < 0 else len(buf[:start].rstrip(b" \t"))
            yield buf[:start]
            pos, header_done = start, True
        while (end := buf.find(b"</page>", pos)) >= 0:
            end += len(b"</page>") + (buf[end + 7 : end + 8] == b"\n")
            yield buf[pos:end]
            pos = end
        if not chunk:
            yield buf[pos:]
            return


_TITLE = re.compile(rb"<title>([^<]*)</title>")
_ID = re.compile(rb"<id>(\d+)</id>")


def build(src: Path, outdir: Path, pages_per_stream: int = PAGES_PER_STREAM) -> tuple[Path, Path]:
    """Write ``<stem>-multistream.xml.bz2`` and ``<stem>-multistream-index.txt.bz2`` under ``outdir``.

    Like Wikimedia: a header stream (root tag + siteinfo), one stream per ``pages_per_stream`` pages, a
    closing stream; one ``offset:page_id:title`` index line per page. The pages' bytes are copied unchanged.
    """
    src, outdir = Path(src), Path(outdir)
    stem = re.sub(r"(\.xml)?(\.bz2|\.gz)?$", "", src.name)
    out, idx = outdir / f"{stem}-multistream.xml.bz2", outdir / f"{stem}-multistream-index.txt.bz2"
    outdir.mkdir(parents=True, exist_ok=True)
    tmp_out, tmp_idx = out.with_name(out.name + ".tmp"), idx.with_name(idx.name + ".tmp")
    raw = open_raw(src)
    try:
        with tmp_out.open("wb") as fo, bz2.open(tmp_idx, "wt", encoding="utf-8") as fi:
            parts = _split_pages(raw)
            fo.write(bz2.compress(next(parts)))
            group: list[bytes] = []
            for part in parts:
                if b"</page>" not in part:  # the tail: </mediawiki>
                    _write_group(fo, fi, group)
                    fo.write(bz2.compress(part))
                    break
                group.append(part)
                if len(group) == pages_per_stream:
                    _write_group(fo, fi, group)
                    group = []
    finally:
        raw.close()
    os.replace(tmp_out, out)
    os.replace(tmp_idx, idx)
    log.info("multistream copy of %s: %s + %s", src, out, idx)
    return out, idx


def _write_group(fo: IO[bytes], fi: IO[str], pages: list[bytes]) -> None:
    if not pages:
        return
    offset = fo.tell()
    for page in pages:
        title, page_id = _TITLE.search(page), _ID.search(page)
        if title is None or page_id is None:
            raise BenchError(f"{fo.name}: a <page> without <title>/<id> near offset {offset:,}")
        name = html.unescape(title.group(1).decode("utf-8"))
        fi.write(f"{offset}:{int(page_id.group(1))}:{name}\n")
    fo.write(bz2.compress(b"".join(pages)))
