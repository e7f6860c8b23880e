"""Writes. One module per area; import the public functions from here."""

from annotation.services.campaigns import (  # noqa: E402,F401
    assignment_next,
    assignment_open,
    assignment_skip,
    campaign_create,
    campaign_set_active,
)
from annotation.services.datasets import (  # noqa: E402,F401
    ImportSummary,
    dataset_export,
    dataset_import,
    import_user_for,
)
from annotation.services.feedback import (  # noqa: E402,F401
    InvalidSubmit,
    LeaseLost,
    StaleSubmit,
    SubmitRefused,
    assignment_draft_save,
    comparison_submit,
    fine_grained_feedback_submit,
)
from annotation.services.rm_files import (  # noqa: E402,F401
    rm_data_build,
    rm_data_build_request,
    rm_data_build_run,
)
