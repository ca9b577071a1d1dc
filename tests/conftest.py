"""Shared fixtures: offline environment, tiny MediaWiki dumps,
a tiny random Llama with an offline tokenizer."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.environment import configure_env

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
configure_env()  # the suite's entry point, as the CLI's main is the command line's

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

PT_TEXT = [
    "Berlim é a capital e a maior cidade da Alemanha.",
    "A Universidade Federal de Mato Grosso do Sul fica em Campo Grande.",
    "O português é a língua oficial do Brasil e de Portugal.",
    "A ararinha-azul é uma ave endémica do Brasil, quase extinta na natureza.",
    "O curso de Ciência da Computação tem duração de quatro anos.",
    "Lisboa é a capital de Portugal e fica junto ao rio Tejo.",
    "A educação superior no Brasil inclui universidades públicas e privadas.",
    "### Instruction: Explique o que é Berlim.\n### Response: Berlim é a capital da Alemanha.",
]


def make_dump(pages: list[dict[str, object]], ns_version: str = "0.11") -> str:
    """Render a MediaWiki export XML string. Each page: title, ns, id, text, redirect (optional)."""
    out = [
        f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-{ns_version}/" version="{ns_version}" '
        'xml:lang="pt">',
        "<siteinfo><sitename>Wikipédia</sitename><dbname>ptwiki</dbname></siteinfo>",
    ]
    for p in pages:
        redirect = f'<redirect title="{p["redirect"]}" />' if p.get("redirect") else ""
        text = str(p.get("text", "")).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out.append(
            f"<page><title>{p['title']}</title><ns>{p.get('ns', 0)}</ns><id>{p['id']}</id>{redirect}"
            f'<revision><id>{p["id"]}0</id><text xml:space="preserve">{text}</text></revision></page>'
        )
    out.append("</mediawiki>")
    return "\n".join(out)


TINY_PAGES: list[dict[str, object]] = [
    {
        "title": "Berlim",
        "id": 1,
        "text": "'''Berlim''' é a [[capital]] da [[Alemanha|Alemanha]].{{Info/Cidade|nome=Berlim}}"
        "<ref>Fonte</ref>\n\n== História ==\nFundada no século XIII.\n\n[[Categoria:Capitais]]",
    },
    {"title": "Berlin", "id": 2, "text": "#REDIRECIONAMENTO [[Berlim]]", "redirect": "Berlim"},
    {"title": "Predefinição:Info", "id": 3, "ns": 10, "text": "{{{nome}}}"},
    {
        "title": "Lisboa",
        "id": 4,
        "text": "'''Lisboa''' é a capital de [[Portugal]], junto ao rio Tejo.\n\n== Geografia ==\n"
        "Lisboa fica na foz do Tejo. A cidade tem sete colinas.",
    },
]


@pytest.fixture()
def tiny_dump(tmp_path: Path) -> Path:
    """A four-page dump: two articles, one redirect, one template page."""
    path = tmp_path / "tiny.xml"
    path.write_text(make_dump(TINY_PAGES), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random-weight Llama with a byte-level BPE tokenizer trained offline on Portuguese text.

    It goes through the same load/train/generate code paths as real models, in seconds on a CPU.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(PT_TEXT * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token=None,
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture()
def tiny_questions(tmp_path: Path) -> Path:
    """Three questions over TINY_PAGES, with gold title/context, FaQuAD-shaped."""
    import json

    rows = [
        {
            "id": "q1",
            "question": "Qual é a capital da Alemanha?",
            "answers": ["Berlim"],
            "title": "Berlim",
            "context": "Berlim é a capital da Alemanha.",
            "split": "dev",
            "lang": "pt",
        },
        {
            "id": "q2",
            "question": "Junto a que rio fica Lisboa?",
            "answers": ["rio Tejo", "Tejo"],
            "title": "Lisboa",
            "context": "Lisboa é a capital de Portugal, junto ao rio Tejo.",
            "split": "dev",
            "lang": "pt",
        },
        {
            "id": "q3",
            "question": "Quantas colinas tem Lisboa?",
            "answers": ["sete colinas"],
            "title": "Lisboa",
            "context": "Lisboa fica na foz do Tejo. A cidade tem sete colinas.",
            "split": "train",
            "lang": "pt",
        },
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@contextlib.contextmanager
def held_in_a_thread(lock: contextlib.AbstractContextManager[None], hold_s: float = 120) -> Iterator[None]:
    """Hold ``lock`` in another thread for the block (as another process would), at most ``hold_s``."""
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(timeout=hold_s)

    t = threading.Thread(target=holder, name="lock-holder")
    t.start()
    try:
        assert held.wait(timeout=30), "the lock holder never took the lock"
        yield
    finally:
        release.set()
        t.join(timeout=30)


@pytest.fixture(scope="session")
def vllm_tiny_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's tokenizer on a random Llama with heads vLLM's CPU attention supports (head_dim 64)."""
    import shutil

    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("vllm-tiny")
    for f in tiny_model_dir.iterdir():
        if f.name not in ("model.safetensors", "config.json"):
            shutil.copy2(f, out / f.name)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.update({"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2,
                   "num_key_value_heads": 1, "head_dim": 64})  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    return out
