"""Large answer files are written gzip-compressed (``answers.jsonl.gz``) and read back transparently: by
iter_jsonl, by rescoring (which keeps the compressed form) and by the run-directory finders."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bench.config import BenchError
from bench.eval import rescore
from bench.io import answers_file, iter_jsonl, write_jsonl
from tests.test_rescore import _run


def _rows(n: int) -> list[dict]:
    return [{"i": i, "text": f"passagem número {i} " * 20} for i in range(n)]


def test_large_rows_go_to_gzip_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text('{"stale": true}\n', encoding="utf-8")
    rows = _rows(200)
    assert write_jsonl(path, rows, gzip_over=1000) == 200
    gz = tmp_path / "answers.jsonl.gz"
    assert gz.exists() and not path.exists()  # the stale plain twin is gone
    assert answers_file(tmp_path) == gz
    assert list(iter_jsonl(path)) == rows  # the plain name finds the compressed twin
    first = gz.read_bytes()
    write_jsonl(path, rows, gzip_over=1000)
    assert gz.read_bytes() == first  # no timestamp in the gzip header: same rows, same bytes
    assert len(first) < len(gzip.decompress(first)) / 5

    write_jsonl(path, rows[:2], gzip_over=1000)  # small again: plain text, the .gz goes
    assert path.exists() and not gz.exists() and answers_file(tmp_path) == path
    assert list(iter_jsonl(path)) == rows[:2]


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    write_jsonl(path, _rows(200), gzip_over=1000)
    gz = tmp_path / "answers.jsonl.gz"
    gz.write_bytes(gz.read_bytes()[:-40])
    with pytest.raises(BenchError, match=r"answers\.jsonl\.gz:\d+: unreadable gzip"):
        list(iter_jsonl(path))


def test_rescore_reads_and_keeps_compressed_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _run(tmp_path)
    plain = run_dir / "answers.jsonl"
    write_jsonl(plain, list(iter_jsonl(plain)), gzip_over=0)
    assert not plain.exists()
    assert rescore.run_dirs_under([tmp_path]) == [run_dir]
    monkeypatch.setattr(rescore, "ANSWERS_GZIP_OVER", 0)
    out = rescore.rescore(run_dir)
    assert out["added"] == ["span_rag", "span_oracle"]
    assert not plain.exists() and (run_dir / "answers.jsonl.gz").exists()
    assert {r["variant"] for r in iter_jsonl(plain)} >= {"span_rag", "span_oracle", "rag"}
