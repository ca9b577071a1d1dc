"""Multistream dumps: the builder, reading by stream offsets (1 and 2 workers), and bad streams/indexes."""

from __future__ import annotations

import bz2
import re
from pathlib import Path

import pytest
from conftest import SHARED, TINY_PAGES, make_dump

from bench.__main__ import main
from bench.config import BenchError
from bench.ingest import multistream
from bench.ingest.corpus import ingest

PTWIKI_SAMPLE = SHARED / "corpora" / "ptwiki-sample.xml.bz2"
PER_STREAM = 4


def _pages() -> list[dict[str, object]]:
    """24 pages: the tiny dump's four (article, redirect, template, article), 19 articles, one empty page."""
    pages = [dict(p) for p in TINY_PAGES]
    for i in range(5, 24):
        text = (
            f"'''Página {i}''' fala de [[Lisboa]] & <b>Porto</b>.\n\n== Seção ==\nTexto {i} {{{{nota|{i}}}}}."
        )
        pages.append(
            {"title": f"Página {i} &amp; A:B" if i % 7 == 0 else f"Página {i}", "id": 100 + i, "text": text}
        )
    pages.append({"title": "Só categoria", "id": 200, "text": "[[Categoria:Teste]]"})  # cleans to empty
    return pages


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "ptwiki-tiny.xml.bz2"
    src.parent.mkdir()
    src.write_bytes(bz2.compress(make_dump(_pages()).encode("utf-8")))
    return src


@pytest.fixture()
def built(source: Path, tmp_path: Path) -> tuple[Path, Path]:
    return multistream.build(source, tmp_path / "ms", pages_per_stream=PER_STREAM)


def _offsets(index: Path) -> list[int]:
    lines = bz2.decompress(index.read_bytes()).decode("utf-8").splitlines()
    return sorted({int(line.split(":", 1)[0]) for line in lines})


def test_build_is_wikimedia_shaped(source: Path, built: tuple[Path, Path]) -> None:
    dump, index = built
    assert dump.name == "ptwiki-tiny-multistream.xml.bz2"
    assert index.name == "ptwiki-tiny-multistream-index.txt.bz2"
    assert multistream.find_index(dump) == index
    assert bz2.decompress(dump.read_bytes()) == bz2.decompress(source.read_bytes())  # bytes copied unchanged
    lines = bz2.decompress(index.read_bytes()).decode("utf-8").splitlines()
    assert len(lines) == len(_pages())
    assert lines[0].split(":", 1)[1] == "1:Berlim"
    assert "107:Página 7 & A:B" in [line.split(":", 1)[1] for line in lines]  # unescaped title, colons kept
    offsets = _offsets(index)
    assert len(offsets) == -(-len(_pages()) // PER_STREAM)  # 6 streams of ≤ 4 pages
    raw = dump.read_bytes()
    header = bz2.BZ2Decompressor().decompress(raw[: offsets[0]])
    assert b"<siteinfo>" in header and b"<page>" not in header
    for a, b in zip(offsets, [*offsets[1:], None], strict=True):
        dec = bz2.BZ2Decompressor()
        text = dec.decompress(raw[a:b])
        assert dec.eof and text.count(b"<page>") == text.count(b"</page>") <= PER_STREAM
        if b is None:  # after the last page stream: the closing stream alone
            assert bz2.decompress(dec.unused_data).strip() == b"</mediawiki>"
        else:
            assert dec.unused_data == b""


@pytest.mark.parametrize("workers", [1, 2])
def test_ingest_through_index_is_byte_identical(
    source: Path, built: tuple[Path, Path], tmp_path: Path, workers: int
) -> None:
    dump, index = built
    single, multi = tmp_path / "single.jsonl", tmp_path / "multi.jsonl"
    s1 = ingest(source, single)
    s2 = ingest(dump, multi, workers=workers)  # index found beside the dump
    assert multi.read_bytes() == single.read_bytes()
    assert s1.streams == 0 and s2.streams == len(_offsets(index)) == 6
    fields = ("pages", "articles", "redirects", "other_namespace", "empty", "bytes_in")
    assert [getattr(s2, f) for f in fields] == [getattr(s1, f) for f in fields]
    assert s1.articles == 21 and s1.empty == 1
    assert "6 bz2 streams read through the index" in s2.summary()


def test_no_index_reads_the_multistream_file_as_one_stream(built: tuple[Path, Path], tmp_path: Path) -> None:
    dump, _ = built
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert ingest(dump, a, use_index=False).streams == 0
    ingest(dump, b)
    assert a.read_bytes() == b.read_bytes()


def test_cli_index_option_and_limit(
    built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump, index = built
    moved = dump.rename(tmp_path / "elsewhere.xml.bz2")  # no index beside it any more
    out = tmp_path / "o.jsonl"
    assert main(["ingest", str(moved), "-o", str(out), "--index", str(index), "--limit", "5"]) == 0
    assert "bz2 streams read through the index" in capsys.readouterr().out
    assert len(out.read_text(encoding="utf-8").splitlines()) == 5


def _rewrite_index(index: Path, edit: dict[int, int]) -> None:
    """Replace whole offsets in the index (old → new)."""
    lines = bz2.decompress(index.read_bytes()).decode("utf-8").splitlines()
    out = []
    for line in lines:
        off, rest = line.split(":", 1)
        out.append(f"{edit.get(int(off), int(off))}:{rest}")
    index.write_bytes(bz2.compress(("\n".join(out) + "\n").encode("utf-8")))


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_last_stream_names_stream_and_file(
    built: tuple[Path, Path], tmp_path: Path, workers: int
) -> None:
    dump, index = built
    offsets = _offsets(index)
    raw = dump.read_bytes()
    dump.write_bytes(raw[: offsets[-1] + (len(raw) - offsets[-1]) // 2])
    out = tmp_path / "o.jsonl"
    with pytest.raises(
        BenchError,
        match=rf"{re.escape(str(dump))}: bz2 stream 6/6 at offset {offsets[-1]:,} "
        rf"\(index .*index\.txt\.bz2:21\): truncated",
    ):
        ingest(dump, out, workers=workers)
    assert not out.exists() and not list(tmp_path.glob(".o.jsonl.*"))  # nothing written, no temp file


def test_cut_middle_stream_is_an_error_at_that_stream(built: tuple[Path, Path], tmp_path: Path) -> None:
    dump, index = built
    offsets = _offsets(index)
    raw = dump.read_bytes()
    dump.write_bytes(raw[: offsets[3] - 30] + raw[offsets[3] :])  # stream 3 loses its last 30 bytes
    _rewrite_index(index, {off: off - 30 for off in offsets[3:]})  # the later streams are indexed right
    with pytest.raises(BenchError, match=rf"bz2 stream 3/6 at offset {offsets[2]:,} .*(truncated|corrupt)"):
        ingest(dump, tmp_path / "o.jsonl")


def test_wrong_offset_names_stream_and_index_line(built: tuple[Path, Path], tmp_path: Path) -> None:
    dump, index = built
    offsets = _offsets(index)
    _rewrite_index(index, {offsets[2]: offsets[2] + 7})
    with pytest.raises(
        BenchError,
        match=rf"{re.escape(str(dump))}: bz2 stream 3/6 at offset {offsets[2] + 7:,} "
        r"\(index .*:9\): no bz2 stream starts at this offset",
    ):
        ingest(dump, tmp_path / "o.jsonl", workers=2)


def test_index_skipping_a_stream_or_listing_other_pages(built: tuple[Path, Path], tmp_path: Path) -> None:
    dump, index = built
    offsets, original = _offsets(index), index.read_bytes()
    _rewrite_index(index, {offsets[2]: offsets[3]})  # stream 3's pages filed under stream 4's offset
    with pytest.raises(
        BenchError, match=rf"stream 2/5 at offset {offsets[1]:,} .*ends before the next indexed"
    ):
        ingest(dump, tmp_path / "o.jsonl")
    text = bz2.decompress(original).decode("utf-8").replace(":105:", ":999:")  # one wrong page id
    index.write_bytes(bz2.compress(text.encode("utf-8")))
    with pytest.raises(
        BenchError,
        match=r"stream 2/6 .*holds pages 4 ids \[105, 106, 107, …\] but the index "
        r"lists 4 ids \[999, 106, 107, …\].*do not match",
    ):
        ingest(dump, tmp_path / "o.jsonl")


def test_bad_index_lines(built: tuple[Path, Path], tmp_path: Path) -> None:
    dump, _ = built
    bad = tmp_path / "bad-index.txt"
    bad.write_text("597:1:Berlim\nnot a line\n", encoding="utf-8")
    with pytest.raises(BenchError, match=rf"{re.escape(str(bad))}:2: expected 'offset:page_id:title'"):
        ingest(dump, tmp_path / "o.jsonl", index=bad)
    bad.write_text(f"{dump.stat().st_size + 5}:1:Berlim\n", encoding="utf-8")
    with pytest.raises(BenchError, match=r":1: offset .* is past the dump's end"):
        ingest(dump, tmp_path / "o.jsonl", index=bad)
    with pytest.raises(BenchError, match="multistream index not found"):
        ingest(dump, tmp_path / "o.jsonl", index=tmp_path / "missing-index.txt.bz2")


def test_find_index_naming(tmp_path: Path) -> None:
    dump = tmp_path / "ptwiki-20250101-pages-articles-multistream.xml.bz2"
    dump.write_bytes(b"")
    assert multistream.find_index(dump) is None
    plain = tmp_path / "ptwiki-20250101-pages-articles-multistream-index.txt"
    plain.write_text("", encoding="utf-8")
    assert multistream.find_index(dump) == plain
    bz = tmp_path / "ptwiki-20250101-pages-articles-multistream-index.txt.bz2"
    bz.write_bytes(b"")
    assert multistream.find_index(dump) == bz
    assert multistream.find_index(tmp_path / "x.xml") is None


@pytest.mark.slow
@pytest.mark.skipif(not PTWIKI_SAMPLE.exists(), reason=f"{PTWIKI_SAMPLE} is absent")
def test_ptwiki_sample_byte_identical(tmp_path: Path) -> None:
    dump, index = multistream.build(PTWIKI_SAMPLE, tmp_path / "ms")
    single, multi = tmp_path / "single.jsonl", tmp_path / "multi.jsonl"
    s1 = ingest(PTWIKI_SAMPLE, single, workers=2)
    s2 = ingest(dump, multi, workers=2)
    assert s2.streams == len(_offsets(index)) and s1.articles == s2.articles > 27_000
    assert multi.read_bytes() == single.read_bytes()
