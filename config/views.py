from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.http import require_GET

from config.health import check_broker, check_database


@login_not_required
@require_GET
def healthz(request):
    """DB and broker reachability as JSON; 503 when either is down."""
    checks = {"database": check_database(), "broker": check_broker()}
    healthy = all(item["ok"] for item in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)


def home(request):
    return render(request, "home.html")


@login_not_required
@require_GET
def favicon(request):
    """Browsers and tools that ask for /favicon.ico get the SVG icon the pages link to."""
    return redirect(static("favicon.svg"), permanent=True)
