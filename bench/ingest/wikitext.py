"""Wikitext → plain text, split into sections.

Two paths share one skeleton (drop comments, split on heading lines, clean each fragment, normalise):

* a fast ``re``/``str`` path (:mod:`bench.ingest.wikitext_fast`) for fragments made only of the common
  constructs (links, bold/italic, lists, ``<ref>``, flat templates such as ``{{Referências}}``, wikitables,
  files, categories, interlanguage links);
* ``mwparserfromhell`` for any fragment with anything else (nested templates, other HTML tags, entities).

``tests/test_wiki.py`` checks that both paths give identical output on every fast-eligible fragment of the
bundled corpora, so the fast path is an optimisation, not a second dialect.
"""

from __future__ import annotations

import re
import unicodedata

import mwparserfromhell
from mwparserfromhell.nodes import ExternalLink, HTMLEntity, Tag, Text, Wikilink
from mwparserfromhell.wikicode import Wikicode

from bench.ingest.wikitext_fast import FLAT_TEMPLATE, clean_fast, fast_eligible, is_dropped_link

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HEADING = re.compile(r"^(={1,6})[ \t]*([^\n]*?)[ \t]*\1[ \t]*$", re.M)

# ---- parser path: tags dropped with their contents; tags that break the line ----
_DROP_TAGS = {
    "ref",
    "references",
    "table",
    "gallery",
    "math",
    "chem",
    "timeline",
    "score",
    "syntaxhighlight",
    "source",
    "graph",
    "mapframe",
    "maplink",
    "imagemap",
    "templatedata",
    "templatestyles",
    "hiero",
    "inputbox",
    "categorytree",
    "style",
    "script",
}
_BLOCK_TAGS = {"br", "hr", "p", "div"}

# ---- shared normalisation ----
_QUOTES = re.compile(r"'{2,}")
_BROKEN_REF = re.compile(r"</?ref\b[.,:;]?", re.I)
_STRAY_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>\n]*)?/?>")
_MAGIC = re.compile(r"__[A-ZÇÃÕÁÉÍÓÚ_]+__")
_LIST_MARK = re.compile(r"^[*#:;]+[ \t]*", re.M)
_TABLE_LINE = re.compile(r"^[ \t]*(?:\{\||\|\}|\|-).*$", re.M)
_HRULE = re.compile(r"^-{4,}[ \t]*$", re.M)
_EMPTY_PARENS = re.compile(r"\([ \t,;]*\)")
# Only runs that change: 2+ blanks, or one blank that is not a plain space (a lone " " is left alone: fast).
_SPACES = re.compile(r"[ \t\u00a0\u2009\u200b]{2,}|[\t\u00a0\u2009\u200b]")
_SPACE_NL = re.compile(r" +\n *|\n +")
_BLANKS = re.compile(r"\n{3,}")


def split_fragments(wikitext: str) -> list[tuple[str, str]]:
    """Drop comments and split on heading lines: [(raw heading, raw body), ...]; the lead has heading ""."""
    text = _COMMENT.sub("", wikitext)
    out: list[tuple[str, str]] = []
    heading, start = "", 0
    for m in _HEADING.finditer(text):
        out.append((heading, text[start : m.start()]))
        heading, start = m.group(2), m.end()
    out.append((heading, text[start:]))
    return out


def _render(code: Wikicode) -> str:
    return "".join(_render_node(node) for node in code.nodes)


def _render_node(node: object) -> str:
    if isinstance(node, Text):
        return str(node.value)
    if isinstance(node, Wikilink):
        title = str(node.title)
        if is_dropped_link(title):
            return ""
        if node.text is not None and str(node.text):
            return _render(node.text)
        return _render(node.title).lstrip(":")
    if isinstance(node, ExternalLink):
        if node.brackets:
            return _render(node.title) if node.title is not None else ""
        return str(node.url)
    if isinstance(node, Tag):
        tag = str(node.tag).strip().lower()
        if node.wiki_markup and tag in {"li", "dt", "dd"}:
            return str(node.wiki_markup)
        if tag in _DROP_TAGS:
            return ""
        if tag in _BLOCK_TAGS and (node.self_closing or node.contents is None):
            return "\n"
        inner = _render(node.contents) if node.contents is not None and not node.self_closing else ""
        return f"\n{inner}\n" if tag in _BLOCK_TAGS else inner
    if isinstance(node, HTMLEntity):
        return str(node.normalize())
    return ""  # templates, parser functions, arguments, comments, headings inside fragments


def clean_slow(fragment: str) -> str:
    """mwparserfromhell path: handles nesting, arbitrary tags and entities."""
    return _render(mwparserfromhell.parse(fragment, skip_style_tags=False))


def normalise(text: str) -> str:
    """Shared final pass: residue removal, list markers, whitespace, NFC."""
    if "{{" in text or "}}" in text:  # unparseable template residue (e.g. unbalanced braces)
        prev = None
        while prev != text:
            prev, text = text, FLAT_TEMPLATE.sub("", text)
        text = text.replace("{{", "").replace("}}", "")
    if "|" in text:
        text = _TABLE_LINE.sub("", text)
    text = text.replace("[[", "").replace("]]", "")
    if "''" in text:
        text = _QUOTES.sub("", text)
    if "<" in text:
        text = _BROKEN_REF.sub("", _STRAY_TAG.sub("", text))
    if "__" in text:
        text = _MAGIC.sub("", text)
    if "----" in text:
        text = _HRULE.sub("", text)
    text = _LIST_MARK.sub("", text)
    if "(" in text:
        text = _EMPTY_PARENS.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _SPACE_NL.sub("\n", text)
    text = _BLANKS.sub("\n\n", text).strip()
    return unicodedata.normalize("NFC", text)


def clean_fragment(fragment: str) -> tuple[str, bool]:
    """Clean one fragment; returns (text, used_parser)."""
    if fast_eligible(fragment):
        text = clean_fast(fragment)
        if "[[" not in text and "]]" not in text:  # otherwise an odd link: let the parser decide
            return normalise(text), False
    return normalise(clean_slow(fragment)), True


def clean_page(wikitext: str) -> tuple[list[tuple[str, str]], int]:
    """Wikitext → [(heading, text), ...] without empty sections, and how many fragments needed the parser."""
    sections: list[tuple[str, str]] = []
    slow = 0
    for raw_heading, body in split_fragments(wikitext):
        text, used = clean_fragment(body)
        slow += used
        if not text:
            continue
        heading = ""
        if raw_heading:
            heading, used = clean_fragment(raw_heading)
            heading = heading.replace("\n", " ")
            slow += used
        sections.append((heading, text))
    return sections, slow
