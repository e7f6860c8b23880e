"""`{% site_url 'name' %}`: the URL of a view that takes no arguments, worked out once per process.

The top bar links every page to the same few views (home, my work, log out,
...); `{% url %}` reverses each one on every render (about 25 microseconds
apiece, issue 9). The URL of a name without arguments changes only with the
script prefix or the URLconf, which are part of the key.
"""

import functools

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse

register = template.Library()


@register.simple_tag
def site_url(name: str) -> str:
    return _reversed(name, get_script_prefix(), get_urlconf())


@functools.lru_cache(maxsize=256)
def _reversed(name: str, prefix: str, urlconf) -> str:
    return reverse(name, urlconf=urlconf)
