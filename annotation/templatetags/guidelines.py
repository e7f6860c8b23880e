from django import template
from django.utils.safestring import mark_safe

from annotation.guidelines import guidelines_html

register = template.Library()


@register.filter
def guidelines(text: str) -> str:
    """Markdown to HTML with raw HTML disabled (markdown-it escapes it), so marking it safe is sound."""
    return mark_safe(guidelines_html(text or ""))  # noqa: S308
