"""Generator backends on the tiny random Llama: rendering, greedy decoding, batching, shared adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import BenchError, Config, ModelConfig
from bench.generators import (
    Generation,
    Generator,
    TransformersGenerator,
    make_generator,
    make_generators,
    plain_prompt,
)

SYSTEM = "Responda em português, de forma breve."
MSGS = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Qual é a capital da Alemanha?"}]
MSGS2 = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Junto a que rio fica Lisboa?"}]


def tiny_cfg(model_dir: Path, backend: str = "transformers") -> Config:
    return Config(model=ModelConfig(name=str(model_dir), backend=backend, dtype="float32"), seed=0)


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with random (non-zero) B matrices, so it visibly changes the model's output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    lcfg = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,
    )
    peft_model = get_peft_model(model, lcfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    return out


def test_plain_prompt_joins_system_and_user_and_ends_with_cue() -> None:
    text = plain_prompt(MSGS)
    assert text.startswith(SYSTEM)
    assert "Pergunta: Qual é a capital da Alemanha?" in text
    assert text.endswith("Resposta:")
    assert plain_prompt([{"role": "user", "content": "Pergunta: x?\nResposta:"}]) == "Pergunta: x?\nResposta:"


def test_transformers_generate_is_greedy_and_deterministic(tiny_model_dir: Path) -> None:
    gen = make_generator(tiny_cfg(tiny_model_dir))
    assert isinstance(gen, Generator)
    a = gen.generate(MSGS, max_new_tokens=8)
    b = gen.generate(MSGS, max_new_tokens=8)
    assert isinstance(a, Generation) and a.error is None
    assert a.text == b.text
    assert 1 <= a.new_tokens <= 8
    assert a.prompt_tokens > 5
    assert 0 < a.ttft_ms <= a.total_ms
    info = gen.info()
    assert info["backend"] == "transformers"
    assert info["quantization"] == "float32"
    assert info["adapter"] is None
    assert info["chat_template"] is True
    assert "transformers" in info["versions"]


def test_chat_template_is_used(tiny_model_dir: Path) -> None:
    gen = make_generator(tiny_cfg(tiny_model_dir))
    assert isinstance(gen, TransformersGenerator)
    rendered = gen.render(MSGS)
    assert rendered.startswith("<|im_start|>system\n" + SYSTEM)
    assert rendered.endswith("<|im_start|>assistant\n")


def test_plain_prompt_when_no_chat_template(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = None
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    gen = TransformersGenerator(model, tok, tiny_cfg(tiny_model_dir))
    assert gen.render(MSGS) == plain_prompt(MSGS)
    assert gen.generate(MSGS, 4).new_tokens >= 1


def test_batch_matches_single(tiny_model_dir: Path) -> None:
    gen = make_generator(tiny_cfg(tiny_model_dir))
    assert isinstance(gen, TransformersGenerator)
    singles = [gen.generate(m, 6) for m in (MSGS, MSGS2)]
    batch = gen.generate_batch([MSGS, MSGS2], 6)
    assert [g.text for g in batch] == [g.text for g in singles]
    assert [g.prompt_tokens for g in batch] == [g.prompt_tokens for g in singles]
    assert gen.generate_batch([], 6) == []


def test_adapter_shares_weights_and_changes_output(tiny_model_dir: Path, tiny_adapter: Path) -> None:
    cfg = tiny_cfg(tiny_model_dir)
    plain = make_generator(cfg).generate(MSGS, 8)
    gens = make_generators(cfg, tiny_adapter)
    assert set(gens) == {"base", "ft"}
    base, ft = gens["base"], gens["ft"]
    assert isinstance(base, TransformersGenerator) and isinstance(ft, TransformersGenerator)
    assert base.model is ft.model  # one copy of the weights
    assert ft.info()["adapter"] == str(tiny_adapter)
    assert base.info()["adapter"] is None
    out_base = base.generate(MSGS, 8)
    out_ft = ft.generate(MSGS, 8)
    assert out_base.text == plain.text  # adapter disabled == plain model
    assert out_ft.text != out_base.text
    assert base.generate(MSGS, 8).text == plain.text  # switching back restores the base model
    assert make_generator(cfg, tiny_adapter).generate(MSGS, 8).text == out_ft.text


def test_factory_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"unknown model\.backend"):
        make_generators(tiny_cfg(tiny_model_dir, backend="vllm"))
    with pytest.raises(BenchError, match=r"adapter_config\.json"):
        make_generators(tiny_cfg(tiny_model_dir), adapter=tmp_path)
    with pytest.raises(BenchError, match=r"openai\.model"):
        make_generators(tiny_cfg(tiny_model_dir, backend="openai"))
    gen = make_generator(tiny_cfg(tiny_model_dir))
    with pytest.raises(BenchError, match="messages"):
        gen.generate([], 4)
