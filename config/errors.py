"""Turns the application error type into an HTTP response, in one place.

A view raises `annotation.qa.errors.Refused` (or a subclass); this middleware
answers with the class's status and the message. htmx requests and JSON
callers get a short text/JSON body their page code shows; full page loads get
the styled error page. A view's `Http404` is answered the same way, so a
missing run or dataset shows the styled page (with the navigation) in
development too, where Django would show its technical 404 page; 403.html,
404.html and 500.html cover what Django's own handlers answer.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from annotation.qa.errors import NotFound, Refused


def refusal_response(request, exc: Refused) -> HttpResponse:
    status = exc.status
    message = exc.message
    accept = request.headers.get("Accept", "")
    if "application/json" in accept or request.content_type == "application/json":
        body = {"error": message}
        if exc.field:
            body["field"] = exc.field
        return JsonResponse(body, status=status)
    if request.headers.get("HX-Request"):
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    html = render_to_string("error.html", {"status": status, "message": message}, request=request)
    return HttpResponse(html, status=status)


class RefusedMiddleware:
    """Answers any `Refused` raised by a view with its status and message."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Refused):
            return refusal_response(request, exception)
        if isinstance(exception, Http404):
            return refusal_response(request, NotFound(str(exception) or "There is nothing at this address."))
        return None
