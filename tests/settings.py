"""The test suite's settings: config.settings with DEBUG=1 unless the environment says otherwise.

DEBUG is off by default (production); the tests, like `make run`, start from the
development defaults (a development secret key, no HTTPS redirect). pytest-django
still runs each test with DEBUG=False. Set here, the variable also reaches the
worker and manage.py processes that the end-to-end tests start. Tests of the
production settings start `manage.py` with their own environment.
"""

import os

os.environ.setdefault("DEBUG", "1")

from config.settings import *  # noqa: E402,F401,F403
