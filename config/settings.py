"""Granary settings, read from the environment.

Storage defaults are for a laptop: an SQLite file and a broker that needs no
server, both under ./var. Production points DATABASE_URL at PostgreSQL and
CELERY_BROKER_URL (and CACHE_URL) at Redis. Safety defaults are for
production: DEBUG is off unless DEBUG=1 (`make run`, the tests), and then a
strong SECRET_KEY, ALLOWED_HOSTS and HTTPS are required or on.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_header_pair, env_int, env_list, env_path, env_secret_key, env_str
from config.frontend import frontend_static_dirs

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("GRANARY_VAR_DIR", BASE_DIR / "var")
# The SQLite file and the filesystem broker live here; create it so a fresh clone just works.
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Off unless asked for: `make run` and the test suite set DEBUG=1; production leaves it unset.
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret_key("SECRET_KEY", debug=DEBUG, dev_default="granary-insecure-dev-key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS: on by default when DEBUG is off (TLS ends at a proxy in front of gunicorn), each switchable.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe /healthz over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# The proxy in front says which scheme the browser used; it must set (not pass through) this header.
SECURE_PROXY_SSL_HEADER = env_header_pair("SECURE_PROXY_SSL_HEADER", None if DEBUG else ("HTTP_X_FORWARDED_PROTO", "https"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_htmx",
    "template_partials",
    "config.apps.GranaryConfig",
    "annotation",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from gunicorn, compressed and cached; before everything that reads the session.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Everything needs a login unless a view is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.errors.RefusedMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "annotation.context_processors.roles",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'granary.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} cannot be parsed: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker share the file; wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file (not :memory:) so that a Celery worker started by the end-to-end tests sees the test
    # data; one per process so that test sessions running side by side never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-granary-{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_PREPARED_STATEMENTS", True):
    # Parameters bound by the server, so that psycopg can prepare a statement the fifth time a connection
    # runs it: PostgreSQL then skips parsing it again (persistent connections keep them), and planning it
    # once it has settled on a generic plan. The next-item lookup, whose generic plan reads far more rows, is
    # planned for its own values every time (annotation/selectors/campaigns.py, _planned_for_its_parameters).
    # Set DATABASE_PREPARED_STATEMENTS=0 behind a pooler in transaction mode that cannot keep them (pgbouncer
    # before 1.21, or without max_prepared_statements).
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "server_side_binding": True,
        "prepare_threshold": 5,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A shared cache (Redis) when CACHE_URL is set: sessions are then read from it and written through to
# the database (one query less per request). Without one, each process has its own memory cache and
# sessions stay in the database: a per-process cache would keep a logged-out session alive elsewhere.
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "config.cache.ReusingRedisCache", "LOCATION": CACHE_URL, "KEY_PREFIX": "granary"}}
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# django-axes: after AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is
# locked out for AXES_COOLOFF_MINUTES (the lockout page says so; a right password is refused meanwhile).
# A successful login before the limit clears the count.
# Django's model backend, reading the user and their roles in one statement (annotation/auth_backend.py).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "annotation.auth_backend.UserWithRolesBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_CALLABLE = "config.views.locked_out"
AXES_RESET_ON_SUCCESS = True
# Failures are recorded; successful logins and logouts are not (one write less per login).
AXES_DISABLE_ACCESS_LOG = True
# Quiet start-up: management commands print only their own output.
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
# Third-party front-end code comes from npm (package.json); serve only the built files. A missing
# package is reported by config.checks (an error in development) and by the tests' conftest.
STATICFILES_DIRS = [BASE_DIR / "static", *frontend_static_dirs(BASE_DIR)]

# whitenoise serves what `collectstatic` gathered, under hashed names cached for a year; DEBUG serves
# the source folders directly so that `make run` needs no collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "config.static_storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Content-Security-Policy (config/csp.py): the pages load scripts, styles and data from this site only.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
CONTENT_SECURITY_POLICY_REPORT_ONLY = env_bool("CSP_REPORT_ONLY", False)

MEDIA_ROOT = VAR_DIR / "media"
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
# The largest dataset file the upload page takes, in MiB; larger ones are refused (413) before they are stored.
MAX_UPLOAD_MB = env_int("MAX_UPLOAD_MB", 1024)
if MAX_UPLOAD_MB < 1:
    raise ImproperlyConfigured(f"Environment variable MAX_UPLOAD_MB={MAX_UPLOAD_MB} must be at least 1.")

# Where trained models, run folders and built reward-model files are written.
MODEL_ROOT = env_path("MODEL_ROOT", VAR_DIR / "models")
# Sentence splitter for reward-model files and fine-grained rewards: auto, sentencizer or a spaCy model.
SENTENCE_SPLITTER = env_str("SENTENCE_SPLITTER", "auto")
# spaCy's tokenizer rules, exported once per spaCy version, so that building reward-model files with the
# sentencizer need not import spaCy (annotation/qa/tokenizer_rules.py).
SPLITTER_CACHE_DIR = env_path("SPLITTER_CACHE_DIR", VAR_DIR / "cache")

# Celery: progress lives in the database, so no result backend is needed.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_FOLDER = env_path("CELERY_BROKER_FOLDER", VAR_DIR / "broker")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# celery beat (a `default` worker started with -B) keeps its last-run times here.
CELERY_BEAT_SCHEDULE_FILENAME = str(env_path("CELERY_BEAT_SCHEDULE_FILENAME", VAR_DIR / "celerybeat-schedule"))

# A run whose worker has not beaten its heart for this long is marked failed by the reaper that celery
# beat sends to the `default` queue every REAP_INTERVAL_S (config/celery.py); workers beat every 3 s.
TRAINING_HEARTBEAT_TIMEOUT_S = env_int("TRAINING_HEARTBEAT_TIMEOUT_S", 45)
TRAINING_REAP_INTERVAL_S = env_int("TRAINING_REAP_INTERVAL_S", 15)
# celery beat walks the queue floors of the campaigns at work this often, in the background, and shares them
# through the cache (annotation/selectors/campaigns.py); under the floors' 600 s life, so none runs out.
QUEUE_FLOOR_REFRESH_S = 300
# Celery queue that training runs go to (GPU workers consume it).
TRAINING_QUEUE = env_str("TRAINING_QUEUE", "gpu")
# Celery queue that advances a pipeline when one of its runs finishes (quick database work).
TRAINING_PIPELINE_QUEUE = env_str("TRAINING_PIPELINE_QUEUE", "default")
# An accelerate config file for the trainer's launch; empty: the worker picks one by its GPU count (below),
# plain `python -m` on a node without GPUs.
TRAINING_ACCELERATE_CONFIG = env_str("ACCELERATE_CONFIG_FILE", "")
# Without ACCELERATE_CONFIG_FILE, GPU workers pick config/accelerate/<strategy>/<n>gpu.yaml by their GPU
# count: ddp (default), zero2, zero3 or fsdp (training/accelerate_configs.py).
TRAINING_ACCELERATE_STRATEGY = env_str("TRAINING_ACCELERATE_STRATEGY", "ddp")
# After a cancel, seconds between SIGTERM and SIGKILL for the trainer's process group.
TRAINING_CANCEL_GRACE_S = env_int("TRAINING_CANCEL_GRACE_S", 10)
# Annotation leases: how long an item stays reserved for the annotator who opened it.
ANNOTATION_LEASE_MINUTES = env_int("ANNOTATION_LEASE_MINUTES", 30)

WANDB_MODE = env_str("WANDB_MODE", "offline")

# The DEBUG error page and error e-mails mask connection URLs (DATABASE_URL, CELERY_BROKER_URL, ...).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.safe_reports.SafeSettingsFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
