"""Process-wide environment settings, made in one place: the CLI's entry point calls :func:`configure_env`
first, and so do the two modules that import ragas (its telemetry flag is read at import) for library users
who never pass through the CLI. Per-stage settings that belong to a launch (CUDA_VISIBLE_DEVICES of a rank:
bench.core.dist; cuBLAS' deterministic workspace: bench.training.repro) stay with the code that needs them."""

from __future__ import annotations

import os

# Never overrides what the user exported.
DEFAULTS = {
    "RAGAS_DO_NOT_TRACK": "true",  # ragas sends usage telemetry unless told not to; this project never does
    "TOKENIZERS_PARALLELISM": "false",  # HF tokenizers' threads + our worker processes: fork warnings
}


def configure_env() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
