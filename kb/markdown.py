"""Markdown in and out of the knowledge base: safe HTML for display, markdown from imported HTML."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

# CommonMark with tables; raw HTML in an article is shown as text, never passed through.
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> str:
    """Article markdown as HTML safe to put in a page: rendered, then sanitised by nh3 (Ammonia)."""
    return nh3.clean(_md.render(text), link_rel="noopener noreferrer nofollow")


def html_to_markdown(html: str) -> str:
    """Imported HTML as markdown whose headings stay `#` headings, so chunking by heading still works."""
    from markdownify import markdownify

    # Sanitising first drops scripts, styles and event handlers along with their content.
    clean = nh3.clean(html, tags=_KEEP_TAGS, clean_content_tags={"script", "style", "title", "template", "noscript"}, link_rel=None)
    text = markdownify(clean, heading_style="ATX", bullets="-", strip=["img"])
    lines = [line.rstrip() for line in text.splitlines()]
    # markdownify leaves runs of blank lines where block elements were; keep paragraphs apart by one.
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


_KEEP_TAGS = {
    "a", "b", "blockquote", "br", "code", "dd", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "li", "ol", "p", "pre", "section", "span", "strong", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}
