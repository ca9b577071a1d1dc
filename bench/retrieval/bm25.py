"""BM25 sparse vectors for Portuguese (stop words, Snowball stemming, ASCII folding), computed offline.

Its own module because its code is part of the index key (:mod:`bench.artifacts`): the term weights are
stored in the index, while the query code in :mod:`bench.retrieval.store` is not.
"""

from __future__ import annotations

Sparse = tuple[list[int], list[float]]


class Bm25Encoder:
    """BM25 term weights (sparse vectors) for Portuguese, computed offline by ``qdrant_edge.Bm25``."""

    def __init__(self) -> None:
        import qdrant_edge as qe

        self._bm25 = qe.Bm25(
            qe.Bm25Config(
                language="portuguese",
                stopwords=qe.StopwordsSet(languages={qe.Language.Portuguese}),
                stemmer=qe.SnowballParams(qe.SnowballLanguage.Portuguese),
                ascii_folding=True,
            )
        )

    def document(self, text: str) -> Sparse:
        v = self._bm25.embed_document(text)
        return list(v.indices), list(v.values)

    def query(self, text: str) -> Sparse:
        v = self._bm25.embed_query(text)
        return list(v.indices), list(v.values)
