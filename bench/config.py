"""Frozen dataclass configuration, loaded from TOML and overridable with ``--set key=value``.

Every stage reads one :class:`Config`. Sections mirror the stages (``[ingest]``, ``[index]``,
``[model]``, ``[finetune]``, ``[run]``, ``[openai]``, ``[tracking]``; their dataclasses live in
:mod:`bench.config_sections` and are importable from here); top-level keys are shared by all of them.
``--set`` accepts either a dotted key (``index.k=5``) or a bare key that names exactly one field
(``k=5``, ``variants=base,rag``, ``device=cuda``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config_checks import data_root, validate  # relative inputs: $PTWIKI_BENCH_DATA or the cwd
from bench.config_sections import (  # the section dataclasses, importable from here
    FinetuneConfig,
    IndexConfig,
    IngestConfig,
    JudgeConfig,
    ModelConfig,
    OpenAIConfig,
    RunConfig,
    TrackingConfig,
    VllmConfig,
)
from bench.errors import BenchError  # re-exported: callers import it from here
from bench.profiles import ALIASES, CONFIG_DIR, profile_path, profiles, read_profile  # noqa: F401 (re-exported)

PACKAGE_DIR = Path(__file__).resolve().parent
# The source checkout (git state in run manifests only). Inputs and outputs never resolve against it: an
# installed package lives in site-packages.
REPO_ROOT = PACKAGE_DIR.parent
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    profile: str = "default"
    corpus: str = "corpora/ptwiki-dev.xml.bz2"
    questions: str = "questions/ptwiki-facts.jsonl"
    split: str = "dev"  # "" = all rows; "dev"/"train" = only that split
    limit: int = 200  # 0 = all questions
    # "first": the file's first ``limit`` questions of the split; "stratified": a deterministic sample whose
    # every prefix keeps each (relation, stratum) cell's share of the split (bench/questions/load.py).
    sample: str = "stratified"
    # "" = the whole split; "selection" / "report": two disjoint parts of it, split by page (bench/questions/
    # load.py): settings are chosen on the selection part and reported on the report part.
    subset: str = ""
    device: str = "cpu"  # "cpu" | "cuda"
    seed: int = 0
    results_dir: str = "results"  # relative: against the current directory
    ingest: IngestConfig = field(default_factory=IngestConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    run: RunConfig = field(default_factory=RunConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    vllm: VllmConfig = field(default_factory=VllmConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def path(self, value: str) -> Path:
        """Resolve a configured input path: absolute as is, relative to :func:`data_root` otherwise."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else data_root() / p

    @property
    def results_path(self) -> Path:
        """The output directory: ``results_dir``, relative to the current directory."""
        p = Path(self.results_dir).expanduser()
        return p if p.is_absolute() else Path.cwd() / p

    def corpus_paths(self) -> list[Path]:
        """``corpus`` may list several dumps/JSONL files separated by commas; they are read in order."""
        paths = [self.path(p.strip()) for p in self.corpus.split(",") if p.strip()]
        if not paths:
            raise BenchError("config key 'corpus' is empty")
        return paths


def section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {name: hints[name] for name in hints if dataclasses.is_dataclass(hints[name])}


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert a TOML value or a ``--set`` string to the field's declared type."""
    origin = typing.get_origin(typ)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise BenchError(f"config key {key!r}: expected a list, got {value!r}")
        item = (typing.get_args(typ) or (str,))[0]
        return tuple(_coerce(v, item, key) for v in value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise BenchError(f"config key {key!r}: expected true/false, got {value!r}")
    try:
        if typ is int and not isinstance(value, bool):
            return int(value)
        if typ is float and not isinstance(value, bool):
            return float(value)
    except ValueError as exc:
        raise BenchError(f"config key {key!r}: expected {typ.__name__}, got {value!r}") from exc
    if typ is str:
        return str(value)
    raise BenchError(f"config key {key!r}: cannot use value {value!r}")


def _fields(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def resolve_key(key: str) -> tuple[str | None, str]:
    """Map a (possibly bare) key to (section or None, field)."""
    top = _fields(Config)
    sections = section_types()
    if "." in key:
        sec, name = key.split(".", 1)
        if sec not in sections:
            raise BenchError(f"unknown config section {sec!r} in {key!r}; sections: {', '.join(sections)}")
        if name not in _fields(sections[sec]):
            raise BenchError(f"unknown config key {key!r}; {sec} has: {', '.join(_fields(sections[sec]))}")
        return sec, name
    if key in top and key not in sections:
        return None, key
    owners = [sec for sec, cls in sections.items() if key in _fields(cls)]
    if len(owners) == 1:
        return owners[0], key
    if len(owners) > 1:
        choices = ", ".join(f"{o}.{key}" for o in owners)
        raise BenchError(f"config key {key!r} is ambiguous; use one of {choices}")
    top_keys = [k for k in top if k not in sections]
    raise BenchError(
        f"unknown config key {key!r}; top-level keys: {', '.join(top_keys)}; sections: "
        f"{', '.join(sections)} (e.g. index.k; `python -m bench config` prints them all)"
    )


def _alias(key: str) -> str:
    """The current key for a deprecated spelling (dotted or bare), with a warning; others unchanged."""
    for old, new in ALIASES.items():
        if key in (old, old.split(".", 1)[1]):
            log.warning("config key %r is deprecated: use %r (same adapter key)", key, new)
            return new
    return key


def _apply(raw: dict[str, dict[str, Any] | Any], key: str, value: Any) -> None:
    sec, name = resolve_key(_alias(key))
    if sec is None:
        raw[name] = value
    else:
        section = raw.setdefault(sec, {})
        assert isinstance(section, dict)
        section[name] = value


def _build(raw: dict[str, Any], source: str) -> Config:
    top = _fields(Config)
    sections = section_types()
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in sections:
            if not isinstance(value, dict):
                raise BenchError(f"{source}: [{key}] must be a table")
            hints = _fields(sections[key])
            sub = {}
            for k, v in value.items():
                if k not in hints:
                    raise BenchError(f"{source}: unknown key {key}.{k}")
                sub[k] = _coerce(v, hints[k], f"{key}.{k}")
            kwargs[key] = sections[key](**sub)
        elif key in top:
            kwargs[key] = _coerce(value, top[key], key)
        else:
            raise BenchError(f"{source}: unknown key {key!r}")
    return Config(**kwargs)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a profile (name such as ``smoke`` or a TOML path; ``extends = "other"`` inherits) and apply
    ``key=value`` overrides."""
    p, raw = read_profile(path)
    raw.setdefault("profile", p.stem)
    for item in overrides or []:
        if "=" not in item:
            raise BenchError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        _apply(raw, key.strip(), value.strip())
    source = f"profile {p.stem!r}" if p.parent == CONFIG_DIR else str(p)
    return validate(_build(raw, str(p)), f"{source} with --set" if overrides else source)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), sort_keys=True))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def config_to_toml(cfg: Config) -> str:
    """The effective config as a TOML profile (``tomllib`` reads it back to the same Config)."""
    d = dataclasses.asdict(cfg)
    sections = section_types()
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if k not in sections]
    for sec in sections:
        lines += ["", f"[{sec}]", *(f"{k} = {_toml_value(v)}" for k, v in d[sec].items())]
    return "\n".join(lines) + "\n"


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of a JSON-serialisable object with sorted keys (stable across runs and machines)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


# Settings that never change a result: a run's hash (and its default run id) is the same with any of them.
UNHASHED = ("profile", "tracking")


def config_hash(cfg: Config, sections: tuple[str, ...] | None = None) -> str:
    """Hash of the effective config, or of only the named sections/top-level keys."""
    d = config_to_dict(cfg)
    for key in UNHASHED:
        d.pop(key, None)
    if sections is not None:
        d = {k: d[k] for k in sections}
    return stable_hash(d)
