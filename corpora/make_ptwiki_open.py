"""Build ``corpora/ptwiki-open.xml``: the pages that ``questions/open-pt.jsonl`` asks about, plus distractors,
copied byte for byte from ``ptwiki-sample.xml.bz2`` (CC BY-SA, Wikipedia contributors; see NOTICE.md).

Distractors: main-namespace, non-redirect pages whose wikitext has 2,000-8,000 bytes, ranked by the sha256 of
their title; the first N are kept. Standard library only, deterministic:

    python corpora/make_ptwiki_open.py ../shared/corpora/ptwiki-sample.xml.bz2 questions/open-pt.jsonl \
        corpora/ptwiki-open.xml --distractors 150
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

TITLE = re.compile(r"<title>(.*?)</title>")
NS = re.compile(r"<ns>(\d+)</ns>")
BYTES = re.compile(r'<text bytes="(\d+)"')
MIN_BYTES, MAX_BYTES = 2000, 8000


def pages(dump: Path) -> Iterator[tuple[str, str]]:
    """(header or page XML, title) in file order; the header comes first with title ""."""
    block: list[str] = []
    with bz2.open(dump, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.lstrip().startswith("<page>") and block:
                yield "".join(block), ""
                block = []
            block.append(line)
            if line.strip() == "</page>":
                text = "".join(block)
                m = TITLE.search(text)
                yield text, html.unescape(m.group(1)) if m else ""
                block = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump")
    ap.add_argument("questions")
    ap.add_argument("output")
    ap.add_argument("--distractors", type=int, default=150)
    args = ap.parse_args()
    lines = Path(args.questions).read_text("utf-8").splitlines()
    wanted = {json.loads(line)["title"] for line in lines if line}
    header, kept, candidates = "", {}, []
    for text, title in pages(Path(args.dump)):
        if not title:
            header = header or text.split("<page>")[0]
            continue
        ns, size = NS.search(text), BYTES.search(text)
        if title in wanted:
            kept[title] = text
        elif (
            ns
            and ns.group(1) == "0"
            and "<redirect" not in text
            and size
            and MIN_BYTES <= int(size.group(1)) <= MAX_BYTES
        ):
            candidates.append((hashlib.sha256(title.encode("utf-8")).hexdigest(), title, text))
    if missing := wanted - set(kept):
        raise SystemExit(f"{args.dump}: no page titled {sorted(missing)}")
    distractors = sorted(candidates)[: args.distractors]
    chosen = set(kept) | {t for _, t, _ in distractors}
    body = [text for text, title in pages(Path(args.dump)) if title in chosen]  # dump order (page id)
    Path(args.output).write_text(header + "".join(body) + "</mediawiki>\n", encoding="utf-8")
    print(f"{args.output}: {len(kept)} question pages + {len(distractors)} distractors")


if __name__ == "__main__":
    main()
