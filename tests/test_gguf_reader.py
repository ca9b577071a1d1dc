"""bench.generation.gguf_reader: one parse per GGUF file while a conversion runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _tiny_gguf(path: Path) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tensor("t", np.arange(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_one_reader_per_file_inside_the_block_and_the_class_restored(tmp_path: Path) -> None:
    import gguf

    from bench.generation.gguf_reader import shared_readers

    a, b = _tiny_gguf(tmp_path / "a.gguf"), _tiny_gguf(tmp_path / "b.gguf")
    original = gguf.GGUFReader
    with shared_readers() as cache:
        first = gguf.GGUFReader(a)
        assert gguf.GGUFReader(str(a)) is first  # transformers passes str or Path: the same file
        assert gguf.GGUFReader(b) is not first and len(cache) == 2
        assert np.array_equal(np.asarray(first.tensors[0].data), np.arange(8, dtype=np.float32))
    assert gguf.GGUFReader is original and not cache
    assert gguf.GGUFReader(a) is not first  # outside the block: a new parse each time
