"""What the DEBUG error page and error e-mails may show of settings and the environment.

Django's SafeExceptionReporterFilter hides names that contain API, TOKEN,
KEY, SECRET, PASS or SIGNATURE. Connection URLs carry passwords under other
names (DATABASE_URL, CELERY_BROKER_URL, a REDIS_URL in the environment that
runserver copies into request.META): this filter hides those names too and
masks the password of any URL-shaped value wherever it appears.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host -> scheme://user:********@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)@", re.IGNORECASE)


def mask_url_passwords(text: str, substitute: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{substitute}@", text)


class SafeSettingsFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DATABASE_URL|BROKER_URL|RESULT_BACKEND|_DSN|REDIS_URL",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if type(cleansed) is str:  # not lazy objects that only pretend to be strings
            return mask_url_passwords(cleansed, self.cleansed_substitute)
        return cleansed
