"""Two annotators who disagree on one item, for the review tests (unit and browser). Plain functions, not fixtures."""

import secrets

from annotation.models import Campaign, CampaignTask
from annotation.qa.vocab import MISSING_MAJOR, REDUNDANT, UNVERIFIABLE
from annotation.services.campaigns import assignment_next
from annotation.services.feedback import comparison_submit, fine_grained_feedback_submit
from tests.annotation.annotate_data import RESPONSES, make_campaign, make_dataset, offsets_of

TEXT = RESPONSES[1]
REPEATED = "It was released on 31 August 2018."
SOLD = "The album sold ten million copies in its first week."
SOLD_SHORT = "sold ten million copies in its first week."
BORN = "Sivan was born in Perth, Australia."


def span(error_type: str, phrase: str, occurrence: int = 1, explanation: str = "") -> dict:
    start, end = offsets_of(TEXT, phrase, occurrence)
    return {"error type": error_type, "explanation": explanation, "start": start, "end": end}


ANNA = {
    "errors": [
        span(REDUNDANT, REPEATED, 2, explanation=REPEATED),
        span(UNVERIFIABLE, SOLD),
    ],
    "missing-info": [{"error type": MISSING_MAJOR, "passage_id": 1, "sentence_id": [2]}],
    "corrected-prediction": "Bloom is the second studio album by Troye Sivan. It was released on 31 August 2018.",
}
BOB = {
    "errors": [
        span(UNVERIFIABLE, SOLD_SHORT),
        span(UNVERIFIABLE, BORN),
    ],
    "missing-info": [],
    "corrected-prediction": "Bloom is the second album by Troye Sivan, released on 31 August 2018. Sivan was born in Johannesburg.",
}


def submit_fine_grained(campaign: Campaign, user, feedback: dict):
    assignment = assignment_next(campaign=campaign, annotator=user)
    response = assignment.example.responses.get(number=1)
    fine_grained_feedback_submit(
        response=response, annotator=user, feedback=feedback, submit_token=secrets.token_urlsafe(16),
        base_version=0, assignment=assignment, base_draft_version=assignment.draft_version,
    )
    assignment.refresh_from_db()
    return assignment


def submit_comparison(campaign: Campaign, user, preference: list[int]):
    assignment = assignment_next(campaign=campaign, annotator=user)
    comparison_submit(
        example=assignment.example, annotator=user, preference=preference, submit_token=secrets.token_urlsafe(16),
        base_version=0, assignment=assignment, base_draft_version=assignment.draft_version,
    )
    assignment.refresh_from_db()
    return assignment


def disagreeing_item(anna, bob, *, task: str = CampaignTask.FINE_GRAINED, examples: int = 1) -> Campaign:
    """A campaign whose first item anna and bob both submitted, differently."""
    campaign = make_campaign(make_dataset("bloom", examples=examples), [anna, bob], task=task, per_item=2)
    if task == CampaignTask.FINE_GRAINED:
        submit_fine_grained(campaign, anna, ANNA)
        submit_fine_grained(campaign, bob, BOB)
    else:
        submit_comparison(campaign, anna, [1, 1, 1, 2, 0, 1])
        submit_comparison(campaign, bob, [1, 2, 1, 2, 1, 1])
    return campaign
