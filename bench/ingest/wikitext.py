"""Wikitext → plain text, split into sections.

Two paths share one skeleton (drop comments, split on heading lines, clean each fragment, normalise):

* a fast ``re``/``str`` path for fragments made only of the common constructs (links, bold/italic, lists,
  ``<ref>``, flat templates such as ``{{Referências}}``, wikitables, files, categories, interlanguage links);
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

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HEADING = re.compile(r"^(={1,6})[ \t]*([^\n]*?)[ \t]*\1[ \t]*$", re.M)

# Link prefixes whose link is removed entirely (files, categories, interlanguage links).
_DROP_NS = {"ficheiro", "imagem", "arquivo", "file", "image", "media", "categoria", "category"}
_INTERLANG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")
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

# ---- fast-path eligibility and rules ----
_FLAT_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
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


def _is_dropped_link(title: str) -> bool:
    """True for [[Ficheiro:..]], [[Categoria:..]], [[en:..]] (not for [[:Categoria:..]])."""
    if ":" not in title or title.lstrip().startswith(":"):
        return False
    prefix = title.split(":", 1)[0].strip()
    return prefix.lower() in _DROP_NS or bool(_INTERLANG.match(prefix))


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
        rest = _FLAT_TEMPLATE.sub("", fragment)
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
        if not _is_dropped_link(m.group(1) + ":"):
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
        text = _FLAT_TEMPLATE.sub("", text)
    text = _strip_tables(text) or ""
    if "[[" in text:
        text = _strip_dropped_links(text)
    if "[" in text:
        text = _EXT_LINK.sub(lambda m: m.group(1) or m.group(2) or "", text)
    if "[[" in text:
        text = _LINK_PIPED.sub(_link_repl, text)
        text = _LINK_PLAIN.sub(lambda m: m.group(1).lstrip(":"), text)
    return text


def _render(code: Wikicode) -> str:
    return "".join(_render_node(node) for node in code.nodes)


def _render_node(node: object) -> str:
    if isinstance(node, Text):
        return str(node.value)
    if isinstance(node, Wikilink):
        title = str(node.title)
        if _is_dropped_link(title):
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
            prev, text = text, _FLAT_TEMPLATE.sub("", text)
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
