"""bench index over several processes: the articles i::n per shard into one Qdrant collection (qdrant-client
local mode, one opener at a time, so the shards run in turn), equal to a single-process index point for point;
the embedded engine refuses a sharded build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from bench.__main__ import main
from bench.config import BenchError, Config, load_config
from bench.core.dist import Shard
from bench.retrieval import index, index_shards
from tests.test_index import _articles


def _cfg(tmp: Path, corpus: Path, *extra: str) -> Config:
    sets = [f"corpus={corpus}", f"results_dir={tmp / 'res'}", "embedder=hashing", "chunk_tokens=30"]
    return load_config(None, [*sets, "chunk_overlap=5", "embed_batch_size=1", *extra])


def points(path: Path) -> dict[str, Any]:
    client = QdrantClient(path=str(path))
    try:
        (name,) = [c.name for c in client.get_collections().collections]
        rows, _ = client.scroll(name, limit=10_000, with_payload=True, with_vectors=True)
        return {str(p.id): (p.payload, p.vector) for p in rows}
    finally:
        client.close()


def test_shards_in_turn_equal_one_process(tmp_path: Path) -> None:
    corpus = _articles(tmp_path / "a.jsonl", n=9)
    cfg = _cfg(tmp_path, corpus, "qdrant_url=http://unused.invalid:6333")
    one = QdrantClient(path=str(tmp_path / "one"))
    single = index.build_index(cfg, client=one)
    one.close()
    seen = 0
    for i in range(3):  # local mode: one opener at a time, so the three shards take turns
        client = QdrantClient(path=str(tmp_path / "three"))
        info = index_shards.build_index_sharded(cfg, Shard(i, 3), client=client)
        client.close()
        seen += info.points_new
        part = json.loads((info.path / f"manifest.shard-{i}-of-3.json").read_text(encoding="utf-8"))
        assert part["counts"]["articles"] == 10 // 3 + (i < 10 % 3)  # articles i::3 (the empty one too)
    assert seen == single.points_total  # every point embedded once, by one shard
    client = QdrantClient(path=str(tmp_path / "three"))
    final = index.build_index(cfg, client=client)  # one pass after the shards: nothing left to embed
    client.close()
    assert final.points_new == 0 and final.points_total == single.points_total
    assert points(tmp_path / "three") == points(tmp_path / "one")  # same ids, payloads and vectors


def test_the_embedded_engine_stays_single_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _articles(tmp_path / "a.jsonl")
    with pytest.raises(BenchError, match=r"embedded engine .* is single-process"):
        index_shards.build_index_sharded(_cfg(tmp_path, corpus), Shard(0, 2))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    sets = [x for s in ["embedder=hashing", f"results_dir={tmp_path / 'res'}"] for x in ("--set", s)]
    assert main(["index", "--corpus", str(corpus), *sets]) == 2
    assert "single-process" in capsys.readouterr().err
    assert not (tmp_path / "res" / "index").exists()
