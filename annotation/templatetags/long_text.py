"""Long texts on pages: the first part, and a link that shows everything.

A dataset may hold a 30 MB question; printing it whole makes a 30 MB page
that no browser wants. `{% long_text value %}` prints up to CLIP_CHARS
characters and a "Show all" link to the same page with `?full=1`, which
prints every text whole.
"""

from django import template
from django.utils.html import format_html

register = template.Library()

CLIP_CHARS = 2000
FULL_PARAMETER = "full"


def showing_all(request) -> bool:
    return request is not None and request.GET.get(FULL_PARAMETER) == "1"


@register.simple_tag(takes_context=True)
def long_text(context, value, limit: int = CLIP_CHARS):
    text = "" if value is None else str(value)
    if len(text) <= limit or showing_all(context.get("request")):
        return text
    return format_html(
        '{}… <a class="small long-text-more" href="?{}=1">Show all {} characters</a>',
        text[:limit],
        FULL_PARAMETER,
        f"{len(text):,}",
    )
