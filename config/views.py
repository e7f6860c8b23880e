import base64
import hashlib
import re

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponseServerError, JsonResponse
from django.template import loader
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.csrf import requires_csrf_token
from django.views.decorators.http import require_GET

from config.csp import header_name as csp_header_name
from config.health import check_broker, check_database

# django-axes answers a locked-out login with this status (Too Many Requests).
LOCKED_OUT_STATUS = 429


@login_not_required
@require_GET
def healthz(request):
    """DB and broker reachability as JSON; 503 when either is down.

    Anyone may ask (load balancers do); what went wrong in detail (the
    exception's text, which can name hosts and users) only staff see.
    """
    checks = {"database": check_database(), "broker": check_broker()}
    if not request.user.is_staff:
        for check in checks.values():
            check.pop("detail", None)
    healthy = all(item["ok"] for item in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)


def home(request):
    return render(request, "home.html")


@login_not_required
@require_GET
def favicon(request):
    """Browsers and tools that ask for /favicon.ico get the SVG icon the pages link to."""
    return redirect(static("favicon.svg"), permanent=True)


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a login refused after too many wrong passwords (AXES_LOCKOUT_CALLABLE)."""
    from axes.helpers import get_client_username

    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)),
    }
    return render(request, "registration/locked_out.html", context, status=LOCKED_OUT_STATUS)


_STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.S)


@requires_csrf_token
def server_error(request):
    """The standalone 500 page (handler500). Its styles are inline, since nothing else can be trusted
    to work when this page is needed; its policy allows exactly those styles (by hash) and no script."""
    html = loader.get_template("500.html").render()
    hashes = " ".join(
        "'sha256-%s'" % base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        for block in _STYLE_BLOCK.findall(html)
    )
    response = HttpResponseServerError(html)
    response[csp_header_name()] = f"default-src 'none'; style-src {hashes}; img-src 'self'; base-uri 'none'; form-action 'none'"
    return response
