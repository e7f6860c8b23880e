"""Production defaults: DEBUG off, a strong secret key, HTTPS settings, masked error pages, login throttling, CSP."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

REPO_ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = secrets.token_urlsafe(50)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`manage.py ARGS` in a fresh process with the production settings module and only the given variables."""
    dropped = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE")  # the last one only for the tests
    base = {key: value for key, value in os.environ.items() if key not in dropped}
    base.update({"DJANGO_SETTINGS_MODULE": "config.settings", **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=base, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "SECRET_KEY is required when DEBUG is off"),
        ("", "SECRET_KEY is required when DEBUG is off"),
        ("abc", "SECRET_KEY is too weak (3 characters"),
        ("django-insecure-" + "x7Qp" * 15, "starts with 'django-insecure-', a known insecure key"),
        ("ab" * 40, "2 different"),
    ],
)
def test_it_refuses_to_start_with_debug_off_and_a_weak_key(key, reason):
    env = {"ALLOWED_HOSTS": "granary.example.org"}
    if key is not None:
        env["SECRET_KEY"] = key
    result = manage("check", **env)  # DEBUG unset: off
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and reason in result.stderr


def test_the_deployment_check_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="granary.example.org")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_debug_is_off_unless_asked_for_and_https_settings_follow_it():
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_PROXY_SSL_HEADER)"
    )
    production = manage("shell", "--no-imports", "-c", code, SECRET_KEY=STRONG_KEY)
    assert production.stdout.split("\n")[0] == "False True 31536000 True True ('HTTP_X_FORWARDED_PROTO', 'https')", production.stderr
    switched = manage(
        "shell", "--no-imports", "-c", code, SECRET_KEY=STRONG_KEY, SECURE_SSL_REDIRECT="0", SECURE_HSTS_SECONDS="60",
        SESSION_COOKIE_SECURE="no", SECURE_PROXY_SSL_HEADER="X-Scheme=https",
    )
    assert switched.stdout.split("\n")[0] == "False False 60 False True ('HTTP_X_SCHEME', 'https')", switched.stderr
    demo = manage("shell", "--no-imports", "-c", code, DEBUG="1")
    assert demo.stdout.split("\n")[0] == "True False 0 False False None", demo.stderr


# Built here, far from the frame the error page shows the source of, so only the settings can leak them.
PASSWORDS = {name: f"{name}-pw-{secrets.token_hex(4)}" for name in ("db", "broker", "meta", "env")}


def _debug_page(request) -> str:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return ExceptionReporter(request, *sys.exc_info()).get_traceback_html()


def test_the_debug_error_page_masks_connection_urls(settings):
    settings.DEBUG = True
    settings.DATABASE_URL = f"postgres://granary:{PASSWORDS['db']}@db.internal:5432/granary"
    settings.CELERY_BROKER_URL = f"redis://:{PASSWORDS['broker']}@redis.internal:6379/0"
    request = RequestFactory().get("/", HTTP_X_SERVICE=f"amqp://guest:{PASSWORDS['meta']}@mq.internal//")
    request.META["SENTRY_ENDPOINT"] = f"https://reporter:{PASSWORDS['env']}@sentry.internal/1"
    html = _debug_page(request)
    assert "boom" in html and "DATABASE_URL" in html and "CELERY_BROKER_URL" in html
    for password in PASSWORDS.values():
        assert password not in html
    assert "https://reporter:********************@sentry.internal/1" in html


# --- login throttling -----------------------------------------------------------------------


def _log_in(client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


@pytest.mark.django_db
def test_it_locks_a_username_out_after_too_many_wrong_passwords(client, make_user, settings):
    make_user("anna", password="right-password-1")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _log_in(client, "anna", "wrong").status_code == 200  # the form again, with its error
    response = _log_in(client, "anna", "wrong")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page and "<strong>anna</strong>" in page
    assert f"locked for 15 minutes after {settings.AXES_FAILURE_LIMIT} wrong passwords" in page
    # Locked: even the right password is refused, and nobody is logged in.
    response = _log_in(client, "anna", "right-password-1")
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    # Another username from the same address is not affected.
    make_user("bert", password="right-password-2")
    assert _log_in(client, "bert", "right-password-2").status_code == 302


@pytest.mark.django_db
def test_a_successful_login_before_the_limit_clears_the_count(client, make_user, settings):
    make_user("anna", password="right-password-1")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in(client, "anna", "wrong")
    assert _log_in(client, "anna", "right-password-1").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _log_in(client, "anna", "wrong").status_code == 200
    assert _log_in(client, "anna", "right-password-1").status_code == 302


# --- Content-Security-Policy ----------------------------------------------------------------

INLINE = [
    # A JSON data block (type="application/json") is never run, so the policy lets it be.
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\sstyle=", re.I), 'a style="" attribute'),
    (re.compile(r"\son[a-z]+=", re.I), "an on...= handler"),
    (re.compile(r"\shx-on[:-]", re.I), "an hx-on handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


@pytest.mark.django_db
def test_every_page_carries_a_strict_policy(client):
    response = client.get(reverse("login"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def _assert_nothing_inline(url: str, html: str) -> None:
    for pattern, what in INLINE:
        found = pattern.search(html)
        assert not found, f"{url} has {what}: {found.group(0)!r}"


@pytest.mark.django_db
def test_the_pages_need_nothing_the_policy_refuses(client, make_user):
    """The main pages' HTML has no inline script, style, handler or javascript: URL (the browser test runs them)."""
    from annotation.models import CampaignTask
    from annotation.services.campaigns import assignment_next
    from tests.annotation.annotate_data import make_campaign, make_dataset

    user = make_user("rita", role="researcher")
    user.groups.add(*make_user("anna", role="annotator").groups.all())
    dataset = make_dataset(examples=1)
    campaign = make_campaign(dataset, [user], task=CampaignTask.BOTH)
    items = [assignment_next(campaign=campaign, annotator=user) for _ in range(2)]
    client.force_login(user)
    pages = [
        reverse("home"),
        reverse("annotation:my_work"),
        reverse("annotation:dataset_list"),
        reverse("annotation:dataset_upload"),
        reverse("annotation:dataset_detail", args=[dataset.name]),
        reverse("annotation:campaign_list"),
        reverse("annotation:campaign_create"),
        reverse("annotation:campaign_detail", args=[campaign.pk]),
        reverse("annotation:rm_data"),
        reverse("training:run_list"),
        reverse("training:run_launch"),
        *[reverse("annotation:annotate", args=[item.pk]) for item in items],
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "Content-Security-Policy" in response
        _assert_nothing_inline(url, response.content.decode())
    client.logout()
    _assert_nothing_inline("login", client.get(reverse("login")).content.decode())


def test_postgresql_connections_prepare_repeated_statements_unless_switched_off():
    code = "from django.conf import settings as s; o = s.DATABASES['default']['OPTIONS']; print(o.get('server_side_binding'), o.get('prepare_threshold'))"
    env = {"DEBUG": "1", "DATABASE_URL": "postgres://granary@db.example.org:5432/granary"}
    assert manage("shell", "--no-imports", "-c", code, **env).stdout.split() == ["True", "5"]
    off = manage("shell", "--no-imports", "-c", code, DATABASE_PREPARED_STATEMENTS="0", **env)
    assert off.stdout.split() == ["None", "None"], off.stderr
    sqlite = manage("shell", "--no-imports", "-c", code, DEBUG="1", DATABASE_URL="sqlite:///:memory:")
    assert sqlite.stdout.split() == ["None", "None"], sqlite.stderr


@pytest.mark.django_db(transaction=True)
def test_postgresql_plans_the_next_item_lookup_for_its_values_and_keeps_generic_plans_elsewhere(make_user):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from annotation.models import CampaignTask
    from annotation.selectors.campaigns import PLANNED_FOR_ITS_PARAMETERS, has_open_items, next_assignment_for
    from tests.annotation.annotate_data import make_campaign, make_dataset

    if connection.vendor != "postgresql":
        pytest.skip("plan_cache_mode and jit are PostgreSQL's")

    def mode() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('plan_cache_mode'), current_setting('jit')")
            return cursor.fetchone()

    annotator = make_user("pia", role="annotator")
    campaign = make_campaign(make_dataset(examples=2), [annotator])
    server_default = mode()
    assert server_default[0] == "auto"
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        assert next_assignment_for(campaign=campaign, annotator=annotator, now=timezone.now()) is not None
        assert mode() == ("force_custom_plan", "off")  # for the rest of the transaction
    lookup = next(i for i, q in enumerate(captured.captured_queries) if "FROM annotation_example e" in q["sql"])
    assert captured.captured_queries[lookup - 1]["sql"] == PLANNED_FOR_ITS_PARAMETERS
    assert mode() == server_default
    # Outside a transaction the lookup gets one of its own, and the settings end with it.
    with CaptureQueriesContext(connection) as captured:
        assert has_open_items(campaign=campaign, annotator=annotator, now=timezone.now())
    assert any(q["sql"] == PLANNED_FOR_ITS_PARAMETERS for q in captured.captured_queries)
    assert mode() == server_default
    # A campaign with both kinds looks up each kind in the same transaction: the settings are made once.
    both = make_campaign(make_dataset("both", examples=2), [annotator], task=CampaignTask.BOTH)
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        assert next_assignment_for(campaign=both, annotator=annotator, now=timezone.now()) is not None
    statements = [q["sql"] for q in captured.captured_queries]
    assert sum("FROM annotation_example e" in sql for sql in statements) == 2
    assert statements.count(PLANNED_FOR_ITS_PARAMETERS) == 1


# Libraries only the GPU workers need; a web worker that imported them would carry them in memory for nothing.
TRAINING_ONLY = ("torch", "transformers", "accelerate", "peft")


def test_a_web_process_loads_every_view_and_template_library_without_the_training_libraries():
    # A fresh process, as a gunicorn worker: the WSGI app, every URL pattern (so every view module) and
    # every template tag library the pages can load.
    code = (
        "import sys; from config.wsgi import application; "
        "from django.urls import get_resolver; from django.template import engines; "
        "patterns = get_resolver().url_patterns; "
        "libraries = engines['django'].engine.template_libraries; "
        "from annotation.models import Campaign; from training.models import TrainingRun; "
        f"print(len(patterns) > 3, len(libraries) > 3, sorted(n for n in {TRAINING_ONLY!r} if n in sys.modules))"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**env, "DEBUG": "1"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True True []", result.stdout


def test_production_static_urls_are_hashed_and_worked_out_once_per_name(tmp_path, settings, monkeypatch):
    import json

    from config.static_storage import StaticFilesStorage

    settings.DEBUG = False  # the hashed names are used only with DEBUG off
    (tmp_path / "staticfiles.json").write_text(json.dumps(
        {"paths": {"css/annotate.css": "css/annotate.0123abcd.css"}, "version": "1.1", "hash": "x"}))
    storage = StaticFilesStorage(location=str(tmp_path), base_url="/static/")
    looked_up = []
    stored_name = storage.stored_name
    monkeypatch.setattr(storage, "stored_name", lambda name: looked_up.append(name) or stored_name(name))
    assert storage.url("css/annotate.css") == storage.url("css/annotate.css") == "/static/css/annotate.0123abcd.css"
    assert looked_up == ["css/annotate.css"]
    with pytest.raises(ValueError, match="Missing staticfiles manifest entry"):
        storage.url("css/missing.css")
    code = "from django.conf import settings; print(settings.STORAGES['staticfiles']['BACKEND'])"
    production = manage("shell", "--no-imports", "-c", code, SECRET_KEY=STRONG_KEY)
    assert production.stdout.strip() == "config.static_storage.StaticFilesStorage", production.stderr
