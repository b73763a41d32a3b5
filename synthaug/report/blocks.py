"""A tiny document model rendered to both Markdown and self-contained HTML (images embedded).

A table cell is text or a `Note`: a short word with the full sentence behind it (a tooltip in HTML, a footnote
in Markdown), so that flags stay one word wide and tables fit a 1280 px page.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    role: Literal["", "answer", "notice"] = ""  # answer: the report's one sentence; notice: a warning to read first


@dataclass(frozen=True)
class Note:
    word: str
    sentence: str


Cell = str | Note


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]


@dataclass
class Figure:
    path: Path
    caption: str
    role: Literal["", "forest"] = ""  # forest: the answer's figure, kept within the first screen


Block = Heading | Para | Table | Figure


def to_markdown(blocks: list[Block], root: Path) -> str:
    out: list[str] = []
    footnotes = 0  # numbered through the document: Markdown footnote names are global
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}\n")
        elif isinstance(b, Para):
            out.append((f"**{b.text}**" if b.role == "answer" else b.text) + "\n")
        elif isinstance(b, Table):
            notes = []
            out.append("| " + " | ".join(b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            for row in b.rows:
                cells = []
                for c in row:
                    if isinstance(c, Note):
                        footnotes += 1
                        notes.append(f"[^{footnotes}]: {c.sentence}")
                        c = f"{c.word}[^{footnotes}]"
                    cells.append(c)
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
            if notes:  # right under their table
                out.extend([*notes, ""])
        elif isinstance(b, Figure):
            out.append(f"![{b.caption}]({b.path.relative_to(root).as_posix()})\n\n*{b.caption}*\n")
    return "\n".join(out)


# Fits a 1280 px window: the body is at most 1100 px, long words in cells may break, figures scale down.
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em;margin:0.3em 0}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em;max-width:100%}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;overflow-wrap:anywhere;font-variant-numeric:tabular-nums}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1.2em 0}
img{max-width:100%;border:1px solid #eee}figcaption{font-size:0.85em;color:#555}.notice{background:#fff4d6;padding:0.6em}
.answer{font-size:1.2em;line-height:1.4;background:#eef4fb;border-left:4px solid #2f6fb0;padding:0.6em 0.8em;margin:0.6em 0}
figure.forest{margin:0.6em 0}figure.forest img{max-height:540px;max-width:100%;width:auto}
abbr{text-decoration:underline dotted;cursor:help}
abbr.hurts,abbr.worse{color:#c62828;font-weight:bold}abbr.helps{color:#1a7f37;font-weight:bold}"""


def to_html(blocks: list[Block], title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            attrs = f" class='{b.role}'" + (" id='answer'" if b.role == "answer" else "") if b.role else ""
            parts.append(f"<p{attrs}>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>" for r in b.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.path.read_bytes()).decode()
            attrs = f" class='{b.role}' id='{b.role}'" if b.role else ""
            parts.append(f"<figure{attrs}><img src='data:image/png;base64,{data}' alt='{html.escape(b.caption)}'>"
                         f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Note):
        css = cell.word.split(";")[0].split(" ")[0]
        return f"<abbr class='{html.escape(css)}' title='{html.escape(cell.sentence)}'>{html.escape(cell.word)}</abbr>"
    return _inline(cell)


def _inline(text: str) -> str:
    """Escape, then render **bold** (the only Markdown the report's text uses)."""
    escaped = html.escape(text)
    pieces = escaped.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(pieces))
