"""Django system checks for what the settings cannot refuse by themselves."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from config.frontend import INSTALL_HINT, missing_frontend_files, missing_frontend_message


@register(Tags.staticfiles)
def check_frontend_packages(app_configs=None, **kwargs):
    """node_modules must hold htmx and Chart.js. In development (DEBUG) that is an error, so `runserver`,
    `migrate` and `make run` stop with the fix; in production a warning, as the files may have been
    collected into STATIC_ROOT on another machine."""
    missing = missing_frontend_files(settings.BASE_DIR)
    if not missing:
        return []
    level, code = (Error, "granary.E001") if settings.DEBUG else (Warning, "granary.W001")
    return [level(missing_frontend_message(missing), hint=INSTALL_HINT, id=code)]
