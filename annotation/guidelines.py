"""Campaign guidelines: Markdown, rendered safely (raw HTML off), with a default that has a worked example per error type."""

from functools import cache, lru_cache
from pathlib import Path

from markdown_it import MarkdownIt

_DEFAULT = Path(__file__).with_name("default_guidelines.md")


@cache
def default_guidelines() -> str:
    return _DEFAULT.read_text(encoding="utf-8")


@cache
def _renderer() -> MarkdownIt:
    # "html": False escapes any HTML in the text; links keep markdown-it's own URL check (no javascript:).
    return MarkdownIt("commonmark", {"html": False})


def guidelines_html(text: str) -> str:
    """The campaign's guidelines as HTML; a campaign without its own gets the default."""
    return _rendered(text.strip() or default_guidelines())


# Every annotation page shows its campaign's guidelines; rendering them is a third of the page's template
# time. The HTML depends on the text alone, so it is kept by text (an edited text is a new key).
@lru_cache(maxsize=64)
def _rendered(markdown: str) -> str:
    return _renderer().render(markdown)
