"""Generator backends on the tiny random Llama: rendering, greedy decoding, batching, shared adapters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.config import BenchError, Config, ModelConfig
from bench.generation.base import Generation, Generator, plain_prompt
from bench.generation.registry import make_generator, make_generators
from bench.generation.transformers_backend import TransformersGenerator

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
    # context first, question after: the question cue is not added twice
    ctx = plain_prompt([{"role": "user", "content": "Contexto:\n1. a\n\nPergunta: y?"}])
    assert ctx.startswith("Contexto:") and ctx.count("Pergunta:") == 1


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
        make_generators(tiny_cfg(tiny_model_dir, backend="nonesuch"))
    with pytest.raises(BenchError, match=r"adapter_config\.json"):
        make_generators(tiny_cfg(tiny_model_dir), adapter=tmp_path)
    with pytest.raises(BenchError, match=r"openai\.model"):
        make_generators(tiny_cfg(tiny_model_dir, backend="openai"))
    gen = make_generator(tiny_cfg(tiny_model_dir))
    with pytest.raises(BenchError, match="messages"):
        gen.generate([], 4)


# --------------------------------------------------------------------------- llama.cpp


def write_tiny_gguf(model_dir: Path, out: Path) -> Path:
    """The tiny HF Llama as an f32 GGUF (q/k permuted like convert_hf_to_gguf), with its BPE tokenizer."""
    import json

    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from bench.generation.lora_gguf import permute_rows

    hcfg = json.loads((model_dir / "config.json").read_text())
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    tcfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    n_layer, n_head, n_kv = (
        hcfg["num_hidden_layers"],
        hcfg["num_attention_heads"],
        hcfg["num_key_value_heads"],
    )
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_context_length(hcfg["max_position_embeddings"])
    w.add_embedding_length(hcfg["hidden_size"])
    w.add_block_count(n_layer)
    w.add_feed_forward_length(hcfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(hcfg["hidden_size"] // n_head)
    w.add_rope_freq_base(float(hcfg.get("rope_theta") or hcfg.get("rope_parameters", {}).get("rope_theta")))
    w.add_layer_norm_rms_eps(hcfg["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = {**tok["model"]["vocab"], **{t["content"]: t["id"] for t in tok["added_tokens"]}}
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {t["content"] for t in tok["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    merges = tok["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(hcfg["bos_token_id"])
    w.add_eos_token_id(hcfg["eos_token_id"])
    w.add_pad_token_id(hcfg["pad_token_id"])
    w.add_add_bos_token(False)
    template = tcfg.get("chat_template") or (model_dir / "chat_template.jinja").read_text()
    w.add_chat_template(template)
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    for name, arr in sorted(load_file(str(model_dir / "model.safetensors")).items()):
        new = tmap.get_name(name, try_suffixes=(".weight",))
        assert new is not None, name
        arr = arr.astype(np.float32)
        if new.endswith("attn_q.weight"):
            arr = permute_rows(arr, n_head)
        elif new.endswith("attn_k.weight"):
            arr = permute_rows(arr, n_kv)
        w.add_tensor(new, np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp")
    return write_tiny_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def _hf_logits(model: object, ids: list[int]) -> object:
    import torch

    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0, -1].float().numpy()  # type: ignore[operator]


def test_lora_gguf_matches_peft(tiny_model_dir: Path, tiny_adapter: Path, tiny_gguf: Path) -> None:
    """llama.cpp + converted LoRA reproduces transformers + peft: same last logits, same greedy tokens."""
    import llama_cpp
    import numpy as np
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from bench.generation.llamacpp import LlamaCppGenerator, llamacpp_generators
    from bench.generation.lora_gguf import convert_lora

    lora = convert_lora(tiny_adapter, tiny_gguf)
    assert lora.parent == tiny_adapter and lora.suffix == ".gguf"
    assert convert_lora(tiny_adapter, tiny_gguf) == lora  # cached by sha256
    cfg = Config(model=ModelConfig(name=str(tiny_gguf), backend="llamacpp", threads=1, n_ctx=256))
    gens = llamacpp_generators(cfg, tiny_adapter)
    base, ft = gens["base"], gens["ft"]
    assert isinstance(base, LlamaCppGenerator) and isinstance(ft, LlamaCppGenerator)
    assert base.shared is ft.shared  # one Llama, adapter switched per call
    ids = base.tokens_for(MSGS)

    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    peft_model = PeftModel.from_pretrained(hf, str(tiny_adapter)).eval()
    with peft_model.disable_adapter():
        hf_base = _hf_logits(peft_model, ids)
    hf_ft = _hf_logits(peft_model, ids)

    def cpp_logits(gen: LlamaCppGenerator) -> np.ndarray:
        sh = gen.shared
        sh.use_adapter(gen.use_adapter)
        sh.llm.reset()
        sh.llm.eval(ids)
        ptr = llama_cpp.llama_get_logits_ith(sh.llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(sh.llm.n_vocab(),)).copy()

    cpp_ft, cpp_base, cpp_ft2 = cpp_logits(ft), cpp_logits(base), cpp_logits(ft)
    assert np.abs(cpp_base - hf_base).max() < 1e-3 * max(1.0, float(np.abs(hf_base).max()))
    assert np.abs(cpp_ft - hf_ft).max() < 1e-3 * max(1.0, float(np.abs(hf_ft).max()))
    assert np.abs(hf_ft - hf_base).max() > 0.1  # the adapter really changes the model
    np.testing.assert_array_equal(cpp_ft, cpp_ft2)  # switching off and on again is exact

    with torch.inference_mode():
        hf_new = peft_model.generate(
            torch.tensor([ids]), max_new_tokens=6, do_sample=False, eos_token_id=None, min_new_tokens=6
        )[0, len(ids) :].tolist()
    cpp_new, ttft, total = ft.generate_tokens(ids, 6)
    assert cpp_new[: len(hf_new)] == hf_new[: len(cpp_new)]
    assert 0 < ttft <= total

    g = ft.generate(MSGS, 6)
    assert g.error is None and g.prompt_tokens == len(ids) and 1 <= g.new_tokens <= 6
    info = ft.info()
    assert info["backend"] == "llamacpp" and info["quantization"] == "F32"
    assert info["adapter"] == str(lora) and base.info()["adapter"] is None
    too_long = base.generate([{"role": "user", "content": "palavra " * 400}], 8)
    assert too_long.error is not None and "n_ctx" in too_long.error
    base.close()
    ft.close()


def test_finish_reason_and_newline_stop(tiny_model_dir: Path) -> None:
    """The truncation flag: "length" only when the cap was hit without EOS or the newline stop."""
    import torch
    from transformers import AutoTokenizer

    from bench.generation.base import finish_reason
    from bench.generation.transformers_backend import _NewlineStop

    assert finish_reason(False, "1954", 64, 64, True) == "length"
    assert finish_reason(True, "1954", 64, 64, True) == "stop"  # EOS on the last allowed token
    assert finish_reason(False, "1954\nPorque", 64, 64, True) == "stop"  # the newline stop fired
    assert finish_reason(False, "1954\nPorque", 64, 64, False) == "length"  # no newline stop configured
    assert finish_reason(False, "1954", 5, 64, True) == "stop"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = tok("Pergunta: quando?", return_tensors="pt")["input_ids"]
    stop = _NewlineStop(tok, prompt.shape[1])

    def with_new(text: str) -> torch.Tensor:
        new = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        return torch.cat([prompt, new], dim=1)

    assert stop(with_new("1954\nmais"), None).tolist() == [True]
    assert stop(with_new("\n1954"), None).tolist() == [False]  # a leading line break does not end the answer
    assert stop(with_new("1954"), None).tolist() == [False]
    gen = make_generator(dataclasses.replace(tiny_cfg(tiny_model_dir), model=ModelConfig(
        name=str(tiny_model_dir), backend="transformers", dtype="float32",
        stop_at_newline=False)))  # fmt: skip
    out = gen.generate(MSGS, max_new_tokens=3)
    assert (out.finish_reason == "length") == (out.new_tokens == 3) and out.truncated == (
        out.finish_reason == "length"
    )
