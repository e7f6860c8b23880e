from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"

    def ready(self) -> None:
        # Register the app's Celery tasks in every process, not only in workers: services enqueue
        # them by name, and CELERY_TASK_ALWAYS_EAGER can only run a task that the process knows.
        from annotation import tasks  # noqa: F401
