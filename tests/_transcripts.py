"""The shell transcripts of the docs (```console blocks), and what makes two runs comparable.

A transcript shows one real run; another run of the same commands differs only in its ids,
times, durations, host and pid. ``normalized`` replaces those, keeping which id is which: the
same id (full, or its first 8 characters) gets the same name everywhere in one text, and so
does an id shown only by its first 8 characters.
"""

from __future__ import annotations

import re
from pathlib import Path

from sybil import Document
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

ROOT = Path(__file__).resolve().parent.parent

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_SHORT = re.compile(r"\b[0-9a-f]{8}\b")
_VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d{3}\b"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?ms\b"), "<ms>"),
    (re.compile(r"^(duration: +)\S+$", re.MULTILINE), r"\g<1><seconds>"),
    (re.compile(r"^(host: +)\S+$", re.MULTILINE), r"\g<1><host>"),
    (re.compile(r"^(pid: +)\d+$", re.MULTILINE), r"\g<1><pid>"),
    (re.compile(r" {2,}"), "  "),  # column widths follow the durations' widths
]


def console_blocks(path: Path, language: str = "console") -> list[str]:
    """Return the text of each ```console block (or ``language``) of ``path``, in order."""
    document = Document(path.read_text(), str(path))
    lexer = FencedCodeBlockLexer(language=language)
    return [str(region.lexemes["source"]) for region in lexer(document)]


def normalized(text: str) -> str:
    """Return ``text`` with what differs between two runs of the same commands replaced."""
    names: dict[str, str] = {}
    for full in _UUID.findall(text):
        names.setdefault(full, f"<id{len(names) + 1}>")
    text = _UUID.sub(lambda match: names[match.group()], text)
    shorts = {full[:8]: f"{name[:-1]}:8>" for full, name in names.items()}
    for short in _SHORT.findall(text):  # ids shown only short
        shorts.setdefault(short, f"<short{len(shorts) + 1}>")
    text = _SHORT.sub(lambda match: shorts[match.group()], text)
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
