"""The regex path of the wikitext cleaner (:mod:`bench.ingest.wikitext`): which fragments it cleans, and how.

A fragment is fast-eligible when it holds only the common constructs (links, bold/italic, lists, ``<ref>``,
flat templates such as ``{{Referências}}``, wikitables, files, categories, interlanguage links, inline
formatting tags); :func:`clean_fast` then strips them with ``re``/``str``. Everything else goes to
mwparserfromhell. The link rules (which links are dropped) are shared with the parser path.
"""

from __future__ import annotations

import re

# Link prefixes whose link is removed entirely (files, categories, interlanguage links).
_DROP_NS = {"ficheiro", "imagem", "arquivo", "file", "image", "media", "categoria", "category"}
_INTERLANG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")

# A template without nested templates (the normaliser also uses it for template residue).
FLAT_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
# Inline formatting tags that render as their contents (``<small>x</small>`` → ``x``): the fast path just
# drops the tag markers. Attributes may not contain quotes, "<" or ">" (those fragments go to the parser).
_INLINE_TAGS = "sup|sub|small|big|abbr|u|s|center|span|font|em|strong|del|ins|blockquote"
_INLINE_ATTRS = r"(?:\s[^<>\"'/]*)?"  # unquoted attributes only
_INLINE_NAME_ATTRS = rf"(?:{_INLINE_TAGS}){_INLINE_ATTRS}"
_INLINE_TAG = re.compile(rf"</?{_INLINE_NAME_ATTRS}>", re.I)
# Only pairs whose contents hold no lone quote, template or tag are fast (a quote or a bracket next to a tag
# boundary parses differently in mwparserfromhell).
_INLINE_PLAIN_PAIR = re.compile(rf"<({_INLINE_TAGS}){_INLINE_ATTRS}>(?:[^'{{}}<>]|''+)*</\1\s*>", re.I)
_OTHER_MARKUP = re.compile(
    r"\{\{\{|\[\[\[|\]\]\]|\[\['(?!')|(?<!')'\]\]|^="
    rf"|<(?!/?ref\b|br\s*/?>|references\s*/>|/?{_INLINE_NAME_ATTRS}>)"
    r"|&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+[0-9]*);",
    re.I | re.M,
)
_QUOTE_TOKEN = re.compile(r"'{2,}|\n")
_REF_SELF = re.compile(r"<ref\b[^>]*/>", re.I)
_REF_PAIR = re.compile(r"<ref\b[^>]*>.*?</ref\s*>", re.I | re.S)
_REFERENCES = re.compile(r"<references\s*/>", re.I)
_BR = re.compile(r"<br\s*/?>", re.I)
_TABLE_TOKEN = re.compile(r"^[ \t]*(\{\||\|\})", re.M)
_LINK_TOKEN = re.compile(r"\[\[|\]\]")
_DROP_LINK_START = re.compile(r"\[\[[ \t]*([^\[\]|:\n]*?)[ \t]*:")
_EXT_LINK = re.compile(
    r"\[(?:(?:https?|ftps?|sftp|irc|ircs|news|nntp|telnet|gopher|svn|git|ssh|mms|worldwind):)?//"
    r"[^\s\[\]<>\"]+(?:[ \t]+([^\]\n]*))?\]|\[(?:mailto|news|tel|urn|geo|magnet|sips?|xmpp):[^\s\[\]<>\"]+"
    r"(?:[ \t]+([^\]\n]*))?\]",
    re.I,
)
_LINK_PIPED = re.compile(r"\[\[([^\[\]|]*)\|([^\[\]]*)\]\]")
_LINK_PLAIN = re.compile(r"\[\[([^\[\]|]*)\]\]")


def is_dropped_link(title: str) -> bool:
    """True for [[Ficheiro:..]], [[Categoria:..]], [[en:..]] (not for [[:Categoria:..]])."""
    if ":" not in title or title.lstrip().startswith(":"):
        return False
    prefix = title.split(":", 1)[0].strip()
    return prefix.lower() in _DROP_NS or bool(_INTERLANG.match(prefix))


def _quotes_balanced(fragment: str) -> bool:
    """Bold/italic runs pair up on every line (unbalanced runs are left to mwparserfromhell's rules)."""
    bold = italic = 0
    for m in _QUOTE_TOKEN.finditer(fragment):
        run = len(m.group())
        if m.group() == "\n":
            if bold % 2 or italic % 2:
                return False
            continue
        if run == 2:
            italic += 1
        elif run == 3:
            bold += 1
        elif run == 5:
            bold, italic = bold + 1, italic + 1
        else:
            return False
    return not (bold % 2 or italic % 2)


def fast_eligible(fragment: str) -> bool:
    """Whether the regex path handles every construct in ``fragment`` (otherwise mwparserfromhell does)."""
    if _OTHER_MARKUP.search(fragment):
        return False
    if "<" in fragment and _INLINE_TAG.search(_INLINE_PLAIN_PAIR.sub("", fragment)):
        return False
    if "''" in fragment and not _quotes_balanced(fragment):
        return False
    if "{{" in fragment or "}}" in fragment:
        rest = FLAT_TEMPLATE.sub("", fragment)
        if "{{" in rest or "}}" in rest:
            return False
    return _strip_tables(fragment) is not None


def _strip_tables(text: str) -> str | None:
    """Remove (nested) ``{| ... |}`` tables; None when they are unbalanced."""
    if "{|" not in text:
        return text
    out, depth, start = [], 0, 0
    for m in _TABLE_TOKEN.finditer(text):
        if m.group(1) == "{|":
            if depth == 0:
                out.append(text[start : m.start()])
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                start = m.end()
    if depth:
        return None
    out.append(text[start:])
    return "".join(out)


def _strip_dropped_links(text: str) -> str:
    """Remove file/category/interlanguage links, including ones whose caption holds nested links."""
    out, pos = [], 0
    while True:
        m = _DROP_LINK_START.search(text, pos)
        if m is None:
            break
        if not is_dropped_link(m.group(1) + ":"):
            out.append(text[pos : m.end()])
            pos = m.end()
            continue
        depth, end = 0, -1
        for tok in _LINK_TOKEN.finditer(text, m.start()):
            depth += 1 if tok.group() == "[[" else -1
            if depth == 0:
                end = tok.end()
                break
        if end < 0:  # unclosed: keep as text, the normaliser removes the brackets
            out.append(text[pos : m.end()])
            pos = m.end()
            continue
        out.append(text[pos : m.start()])
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _link_repl(m: re.Match[str]) -> str:
    return m.group(2) or m.group(1).lstrip(":")


def clean_fast(fragment: str) -> str:
    """Regex path; only valid when :func:`fast_eligible` is true."""
    text = fragment
    if "<" in text:
        text = _REF_SELF.sub("", text)
        text = _REF_PAIR.sub("", text)
        text = _REFERENCES.sub("", text)
        text = _BR.sub("\n", text)
        text = _INLINE_TAG.sub("", text)
    if "{{" in text:
        text = FLAT_TEMPLATE.sub("", text)
    text = _strip_tables(text) or ""
    if "[[" in text:
        text = _strip_dropped_links(text)
    if "[" in text:
        text = _EXT_LINK.sub(lambda m: m.group(1) or m.group(2) or "", text)
    if "[[" in text:
        text = _LINK_PIPED.sub(_link_repl, text)
        text = _LINK_PLAIN.sub(lambda m: m.group(1).lstrip(":"), text)
    return text
