"""The project package.

The Celery app (config/celery.py) is not imported here, as Celery's Django
example does, because every process would then pay for importing Celery
(about 0.2 s) at start-up, data commands included. Nothing needs it there:
the services that enqueue import `config.celery` and send tasks through that
app by name, and a worker started with `celery -A config` finds
`config.celery.app` itself. `config.celery_app` still works (loaded on first
use).
"""


def __getattr__(name: str):
    if name == "celery_app":
        from config.celery import app

        return app
    raise AttributeError(f"module 'config' has no attribute {name!r}")
