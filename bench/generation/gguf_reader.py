"""One parse of a GGUF file per conversion. transformers reads a GGUF three times to convert it (config,
tokenizer, weights: each ``load_gguf_checkpoint`` builds a new ``gguf.GGUFReader``), and parsing the 0.5B
generator's metadata (a 151,936-token vocabulary and its merges) takes ~6 s on 2 CPU cores each time. A
reader is read-only (a memory map and the fields parsed from it), so inside :func:`shared_readers` every
reader of the same file (path, size, mtime) is the first one. The converted weights are the same bytes: the
same code dequantises the same tensors."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def shared_readers() -> Iterator[dict[tuple[str, int, int], Any]]:
    """``gguf.GGUFReader`` returns one reader per file while the block runs (read mode only); the readers
    are dropped, and the class restored, when it ends. Yields the cache (tests look inside)."""
    import gguf

    module: Any = gguf  # the class is replaced by a function while the block runs
    original: Any = gguf.GGUFReader
    cache: dict[tuple[str, int, int], Any] = {}

    def reader(path: str | os.PathLike[str], mode: Any = "r") -> Any:
        if mode != "r":
            return original(path, mode)
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
        if key not in cache:
            cache[key] = original(path, mode)
        return cache[key]

    module.GGUFReader = reader  # transformers imports the name from gguf at each call
    try:
        yield cache
    finally:
        module.GGUFReader = original
        cache.clear()
