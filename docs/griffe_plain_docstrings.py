"""Griffe extension for the API reference: minigrad docstrings are plain text, not Markdown.

Docstrings write shapes as ``(N, C*kh*kw, L)``; Markdown would turn ``*kh*`` into emphasis
and print ``Ckhkw``, and would join the lines ``x: (N, C, H, W)`` / ``Returns (N, O, OH, OW)``
into one. This escapes every ``*`` outside code spans and code blocks and keeps each text
line on its own line (a Markdown hard break), so the API pages show the docstrings as written.
"""
from __future__ import annotations

import re

import griffe

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _escape_line(line: str) -> str:
    parts, last = [], 0
    for match in _CODE_SPAN.finditer(line):
        parts.append(line[last:match.start()].replace("*", r"\*"))
        parts.append(match.group(0))
        last = match.end()
    parts.append(line[last:].replace("*", r"\*"))
    return "".join(parts)


def escape_stars(text: str) -> str:
    """Escape '*' and keep line breaks, except inside code spans, fenced and indented code blocks."""
    out, in_fence, in_indented, previous_blank = [], False, False, True
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            out.append(line)
        elif in_fence:
            out.append(line)
        elif line.startswith("    ") and (previous_blank or in_indented):
            in_indented = True
            out.append(line)
        else:
            in_indented = False
            out.append(_escape_line(line) + ("  " if stripped else ""))
        previous_blank = stripped == ""
    return "\n".join(out)


class PlainDocstrings(griffe.Extension):
    def on_object(self, *, obj, loader, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = escape_stars(obj.docstring.value)
