"""Writes. One module per area; import the public functions from here.

The names load their module when first used (PEP 562), so that importing one
area (`annotation.services.rm_files` for the command line) does not import
every other area's dependencies with it.
"""

from importlib import import_module

_PUBLIC = {
    "annotation.services.campaigns": (
        "assignment_next",
        "assignment_open",
        "assignment_skip",
        "campaign_create",
        "campaign_set_active",
    ),
    "annotation.services.datasets": ("ImportSummary", "dataset_export", "dataset_import", "import_user_for"),
    "annotation.services.feedback": (
        "InvalidSubmit",
        "LeaseLost",
        "StaleSubmit",
        "SubmitRefused",
        "assignment_draft_save",
        "comparison_submit",
        "fine_grained_feedback_submit",
    ),
    "annotation.services.rm_files": ("rm_data_build", "rm_data_build_request", "rm_data_build_run"),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
