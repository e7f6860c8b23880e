from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"
    # The app's Celery tasks (annotation/tasks.py) are not imported at start-up: they pull in every
    # service and Celery itself, which a data command never needs. Workers find them by autodiscovery;
    # a process that enqueues one loads them first (`celery_app.loader.import_default_modules()`), so
    # CELERY_TASK_ALWAYS_EAGER runs the registered task in place.
