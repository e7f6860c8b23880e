"""Content-Security-Policy on every page: scripts, styles and requests from this site only.

Django 5.2 has no built-in CSP. The pages are written for a strict policy:
no inline scripts, styles, `style=""` attributes or `hx-on` handlers; htmx is
told not to inject its indicator styles (`includeIndicatorStyles: false` in
base.html). `settings.CONTENT_SECURITY_POLICY` holds the directives; a view
that sets its own header keeps it.
"""

from __future__ import annotations

from django.conf import settings

HEADER = "Content-Security-Policy"


def policy_header(directives: dict[str, list[str]]) -> str:
    return "; ".join(f"{name} {' '.join(sources)}".strip() for name, sources in directives.items())


def header_name() -> str:
    return HEADER + ("-Report-Only" if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY else "")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.header = header_name()
        self.value = policy_header(settings.CONTENT_SECURITY_POLICY)

    def __call__(self, request):
        response = self.get_response(request)
        if self.value and self.header not in response:
            response[self.header] = self.value
        return response
