from django.apps import AppConfig


class GranaryConfig(AppConfig):
    """The project package as an app, so that its system checks are registered at start-up."""

    name = "config"
    label = "granary"
    verbose_name = "Granary"

    def ready(self) -> None:
        from config import checks  # noqa: F401  (registers the checks)
