"""``report.html``: the Markdown report as one self-contained page.

The Markdown is rendered with markdown-it-py (CommonMark plus tables, raw HTML disabled) and
every figure it links is embedded as a base64 data URI, so the page can be mailed or archived
alone and shows the same text, tables and figures as ``report.md``.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from birram import io

MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.5;
       color: #1d1d1f; max-width: 1150px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: 1em 0; font-size: .88em; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d0d0d0; padding: .3em .6em; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; font-size: .92em; }
"""


def data_uri(path: Path) -> str:
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def render(markdown: str, base_dir: Path) -> str:
    """The HTML page for ``markdown`` whose image links are relative to ``base_dir``.

    A link to a file that does not exist is left as it is (and shows as a broken image).
    """
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    title = "report"
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1" and title == "report":
            title = tokens[i + 1].content
        for child in token.children or []:
            if child.type == "image":
                source = base_dir / str(child.attrs["src"])
                if source.is_file():
                    child.attrs["src"] = data_uri(source)
    body = md.renderer.render(tokens, md.options, {})
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"{body}</body>\n</html>\n")


def write_html(markdown_path: Path) -> Path:
    """Write ``report.html`` beside ``markdown_path`` (atomically) and return its path."""
    path = markdown_path.with_suffix(".html")
    io.write_text(path, render(markdown_path.read_text(encoding="utf-8"), markdown_path.parent))
    return path
