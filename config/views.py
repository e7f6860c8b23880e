from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

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


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a login refused after too many wrong passwords (AXES_LOCKOUT_CALLABLE)."""
    from axes.helpers import get_client_username

    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)),
    }
    return render(request, "registration/locked_out.html", context, status=LOCKED_OUT_STATUS)
