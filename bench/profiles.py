"""Bundled and user profiles: where they are, and reading one — a TOML file over the profile it ``extends``
(none: the dataclass defaults, which are the default profile), with deprecated keys renamed. The loader and
the ``--set`` overrides are in :mod:`bench.config`."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from bench.errors import BenchError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # the bundled profiles: package data, in a wheel too
# Deprecated spellings, still read (with a warning) so old profiles and commands keep working: name → key.
ALIASES = {"finetune.train_format": "finetune.recipe"}
log = logging.getLogger(__name__)


def _rename_aliases(raw: dict[str, Any], p: Path) -> None:
    """A profile that still spells a key the old way: the current key, else the alias (as it always was)."""
    for old, new in ALIASES.items():
        (sec, name), current = old.split(".", 1), new.split(".", 1)[1]
        if isinstance(table := raw.get(sec), dict) and name in table:
            log.warning("%s: %s is deprecated: use %s (same adapter key)", p, old, new)
            value = table.pop(name)
            table[current] = table.get(current) or value


def profiles() -> list[str]:
    """The bundled profile names (``bench/configs/*.toml``, package data)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def profile_path(name_or_path: str) -> Path:
    """A profile name (bundled) or a TOML file (relative to the current directory)."""
    p = Path(name_or_path).expanduser()
    if p.suffix == ".toml" or p.exists():
        return p
    return CONFIG_DIR / f"{name_or_path}.toml"


def read_profile(path: str | Path | None, chain: tuple[Path, ...] = ()) -> tuple[Path, dict[str, Any]]:
    """A profile's TOML merged over the profile it ``extends`` (none: the dataclass defaults, which are the
    default profile), with deprecated keys renamed."""
    p = profile_path(str(path)) if path else CONFIG_DIR / "default.toml"
    if not p.exists():
        if p.parent == CONFIG_DIR:
            raise BenchError(
                f"unknown profile {str(path)!r}; profiles: {', '.join(profiles())} (or a .toml file)"
            )
        raise BenchError(f"config file not found: {p}" + (f" (extended by {chain[-1]})" if chain else ""))
    if p.resolve() in chain:
        raise BenchError(f"{p}: 'extends' loops back ({' → '.join(map(str, chain))} → {p})")
    try:
        raw: dict[str, Any] = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{p}: invalid TOML: {exc}") from exc
    _rename_aliases(raw, p)
    parent = raw.pop("extends", None)
    if parent is None:
        return p, raw
    if not isinstance(parent, str):
        raise BenchError(f"{p}: 'extends' names one profile (a string), got {parent!r}")
    base = read_profile(parent, (*chain, p.resolve()))[1]
    base.pop("profile", None)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return p, base
