"""Reads. One module per area; import the public functions from here."""

from annotation.selectors.campaigns import (  # noqa: E402,F401
    campaign_progress,
    campaigns_for_annotator,
    next_assignment_for,
)
from annotation.selectors.datasets import (  # noqa: E402,F401
    dataset_list,
    dataset_resolve,
    dataset_split_stats,
    example_annotations,
    example_filter_choices,
    example_rows,
    example_search,
    feedback_complete_examples,
    feedback_records_for,
    input_records_for,
)
