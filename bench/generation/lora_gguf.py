"""peft LoRA → GGUF LoRA conversion, for the llama.cpp backend (:mod:`bench.generation.llamacpp`).

The conversion follows llama.cpp's ``convert_lora_to_gguf.py``: HF tensor names are mapped to llama.cpp names
with gguf's tensor-name map, each target weight gets ``<name>.lora_a`` ([r, in]) and ``<name>.lora_b``
([out, r]), and the file carries ``general.type=adapter``, ``adapter.type=lora``, ``adapter.lora.alpha``.
For the ``llama`` architecture the q/k rows are permuted like the base weights (HF rotate-half → GGUF
interleaved RoPE layout); ``qwen2`` needs no permutation. The result is cached next to the adapter, keyed
by its sha256.

"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import BenchError, stable_hash
from bench.io import sha256_file

log = logging.getLogger(__name__)

SUPPORTED_ARCHS = ("llama", "qwen2")


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k permutation (convert_hf_to_gguf.LlamaModel.permute) applied to the output rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_metadata(path: Path) -> dict[str, Any]:
    """Architecture, head counts, block count and file type of a GGUF (header only; tensors stay mmapped)."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        if f.types and f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]].tolist()[0] if f.data else None

    arch = field("general.architecture")
    qtypes = sorted({t.tensor_type.name for t in reader.tensors if len(t.shape) >= 2})
    return {
        "arch": arch,
        "n_head": field(f"{arch}.attention.head_count"),
        "n_head_kv": field(f"{arch}.attention.head_count_kv") or field(f"{arch}.attention.head_count"),
        "n_layer": field(f"{arch}.block_count"),
        "tensor_types": qtypes,
        "chat_template": field("tokenizer.chat_template"),
    }


def _read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    """``adapter_config.json`` of a peft adapter folder (BenchError when the folder is not one)."""
    cfg_path, st_path = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    if not cfg_path.exists() or not st_path.exists():
        raise BenchError(
            f"{adapter_dir}: not a peft LoRA adapter (adapter_config.json/adapter_model.safetensors)"
        )
    acfg: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))
    return acfg


def _rank_and_alpha(acfg: dict[str, Any], arch: str, adapter_dir: Path) -> tuple[int, float]:
    """Rank and llama.cpp alpha; BenchError for what a GGUF LoRA cannot express."""
    if arch not in SUPPORTED_ARCHS:
        raise BenchError(f"LoRA → GGUF supports {', '.join(SUPPORTED_ARCHS)}; base model is {arch!r}")
    if acfg.get("peft_type", "LORA") != "LORA" or acfg.get("use_dora"):
        raise BenchError(
            f"{adapter_dir}: only plain LoRA adapters convert to GGUF (no DoRA/other peft types)"
        )
    if acfg.get("rank_pattern") or acfg.get("alpha_pattern") or acfg.get("modules_to_save"):
        raise BenchError(
            f"{adapter_dir}: rank_pattern/alpha_pattern/modules_to_save are not supported by GGUF"
        )
    r, alpha = int(acfg["r"]), float(acfg["lora_alpha"])
    if acfg.get("use_rslora"):
        alpha = alpha * math.sqrt(r)  # llama.cpp scales by alpha / r; rsLoRA by alpha / sqrt(r)
    return r, alpha


def _lora_tensors(
    tensors: dict[str, np.ndarray], tmap: Any, meta: dict[str, Any], adapter_dir: Path
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(llama.cpp name, lora_a, lora_b) per target weight, in name order; llama's q/k rows permuted."""
    for name in sorted(tensors):
        if ".lora_A." not in name:
            if ".lora_B." not in name:
                raise BenchError(f"{adapter_dir}: unexpected tensor {name} (only lora_A/lora_B supported)")
            continue
        b_name = name.replace(".lora_A.", ".lora_B.")
        hf = name.replace("base_model.model.", "", 1).replace(".lora_A.weight", ".weight")
        new = tmap.get_name(hf, try_suffixes=(".weight",))
        if new is None:
            raise BenchError(f"{adapter_dir}: cannot map {hf} to a llama.cpp tensor name")
        a = tensors[name].astype(np.float32)
        b = tensors[b_name].astype(np.float32)
        if meta["arch"] == "llama" and new.endswith(("attn_q.weight", "attn_k.weight")):
            heads = meta["n_head"] if new.endswith("attn_q.weight") else meta["n_head_kv"]
            b = permute_rows(b, int(heads))
        yield new, a, b


def convert_lora(adapter_dir: Path, base_gguf: Path, out: Path | None = None) -> Path:
    """peft LoRA adapter folder → llama.cpp GGUF LoRA, cached by sha256 of adapter + base arch."""
    import gguf
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    st_path = adapter_dir / "adapter_model.safetensors"
    acfg = _read_adapter_config(adapter_dir)
    meta = gguf_metadata(base_gguf)
    arch = meta["arch"]
    r, alpha = _rank_and_alpha(acfg, arch, adapter_dir)
    key = stable_hash({"adapter": sha256_file(st_path), "config": acfg, "arch": arch, "v": 1})
    out = out or adapter_dir / f"adapter-{key}.gguf"
    if out.exists():
        return out

    arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    tmap = gguf.get_tensor_name_map(arch_enum, int(meta["n_layer"]))
    tensors = load_file(str(st_path))
    writer_tmp = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(str(writer_tmp), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    n = 0
    for new, a, b in _lora_tensors(tensors, tmap, meta, adapter_dir):
        writer.add_tensor(f"{new}.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{new}.lora_b", np.ascontiguousarray(b))
        n += 1
    if n == 0:
        raise BenchError(f"{adapter_dir}: adapter has no LoRA tensors")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(writer_tmp, out)
    log.info(
        "converted LoRA adapter %s → %s (%d target weights, alpha %g, r %d)",
        adapter_dir,
        out.name,
        n,
        alpha,
        r,
    )
    return out
