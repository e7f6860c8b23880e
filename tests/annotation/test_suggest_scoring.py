"""Suggestions computed in the background with tiny offline reward models, stored with offsets into the text."""

import pytest

from annotation.models import Example, ItemScore, Response, Suggestion, SuggestionJob
from annotation.qa import suggestions as sq
from annotation.qa.text import load_splitter, segment_spans
from annotation.qa.vocab import F_ERR, NF_ERR, NO_ERROR
from annotation.services.suggestions import campaign_suggest_settings_save, suggestion_job_request
from tests.annotation.annotate_data import make_campaign, make_dataset
from tests.annotation.suggest_data import suggester_run
from tests.training.suggest_models import build_suggest_models

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from tests.annotation.annotate_data import PASSAGES, QUESTION, RESPONSES

    texts = [QUESTION, *RESPONSES.values(), *(" ".join(p) for p in PASSAGES)]
    return build_suggest_models(tmp_path_factory.mktemp("suggest-models"), texts=texts)


def _scored_campaign(annotator, tiny_models, *, examples=2):
    campaign = make_campaign(make_dataset(examples=examples), [annotator])
    runs = {role: suggester_run(role, tiny_models[role]).pk for role in ("relevance", "factuality", "preference")}
    campaign_suggest_settings_save(campaign=campaign, runs=runs, no_suggestion_share=0.0, order="uncertain", order_seed=1)
    return campaign, runs


@pytest.mark.slow
def test_the_scoring_task_runs_on_the_gpu_queue_and_stores_segments_with_offsets_that_match_the_text(
    annotator, tiny_models, eager_celery, django_capture_on_commit_callbacks, settings
):
    from training import tasks  # noqa: F401  (registers training.score_suggestions in this process)

    campaign, runs = _scored_campaign(annotator, tiny_models)
    with django_capture_on_commit_callbacks(execute=True):
        job = suggestion_job_request(campaign=campaign)
    job.refresh_from_db()
    assert job.status == SuggestionJob.Status.SUCCEEDED, job.error
    responses = Response.objects.filter(example__dataset=campaign.dataset)
    assert job.total == job.done == responses.count() == 8

    nlp, _ = load_splitter()
    for response in responses:
        text = response.text
        lead = len(text) - len(text.lstrip())
        for suggester, level in ((sq.RELEVANCE, "subsentence"), (sq.FACTUALITY, "sentence")):
            stored = list(Suggestion.objects.filter(campaign=campaign, response=response, suggester=suggester).order_by("position"))
            expected = [(lead + s, lead + e) for s, e in segment_spans(nlp, text.strip(), level)]
            assert [(s.start, s.end) for s in stored] == expected
            assert all(text[s.start : s.end] == text[s.start : s.end].strip() and s.end > s.start for s in stored)
            assert {s.label for s in stored} <= {NO_ERROR, NF_ERR if suggester == sq.RELEVANCE else F_ERR}
            assert all(0.0 <= s.probability <= 1.0 for s in stored)
            # The label is the argmax: an error label exactly when its probability is the larger.
            assert all((s.label != NO_ERROR) == (s.probability > 0.5) for s in stored if abs(s.probability - 0.5) > 1e-6)
            assert {s.run_id for s in stored} == {runs[suggester]}
        # Per-segment rewards for display: one per segment and model, with the paper's weights.
        segments = response.reward_segments
        assert len(segments) == Suggestion.objects.filter(campaign=campaign, response=response).count()
        assert {abs(s["reward"]) for s in segments} <= {0.3, 0.5}
    # Both label kinds occur (the tiny models' logits are spread), so the page has something to outline.
    labels = set(Suggestion.objects.filter(campaign=campaign).values_list("label", flat=True))
    assert NO_ERROR in labels and (NF_ERR in labels or F_ERR in labels)
    # Every item got its order keys, the preference RM scored all four answers.
    scores = ItemScore.objects.filter(campaign=campaign)
    assert scores.count() == Example.objects.filter(dataset=campaign.dataset).count()
    for row in scores:
        assert len(row.scores["preference"]) == 4 and row.uncertainty is not None and row.disagreement is not None


def test_a_job_whose_run_lost_its_model_fails_with_a_message(annotator):
    from training.suggestions import suggestion_job_run

    campaign = make_campaign(make_dataset(examples=1), [annotator])
    run = suggester_run("relevance")  # no model saved
    campaign_suggest_settings_save(campaign=campaign, runs={"relevance": run.pk}, no_suggestion_share=0.2, order="input", order_seed=0)
    job = suggestion_job_request(campaign=campaign)
    suggestion_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == SuggestionJob.Status.FAILED
    assert f"run {run.pk}" in job.error and "no saved model" in job.error


def test_a_second_scoring_while_one_is_queued_is_refused(annotator):
    from annotation.qa.errors import Conflict

    campaign = make_campaign(make_dataset(examples=1), [annotator])
    run = suggester_run("factuality")
    campaign_suggest_settings_save(campaign=campaign, runs={"factuality": run.pk}, no_suggestion_share=0.2, order="input", order_seed=0)
    suggestion_job_request(campaign=campaign)
    with pytest.raises(Conflict, match="already being scored"):
        suggestion_job_request(campaign=campaign)


def test_settings_refuse_a_run_of_the_wrong_kind_naming_it(annotator):
    from annotation.qa.errors import BadRequest

    campaign = make_campaign(make_dataset(examples=1), [annotator])
    wrong = suggester_run("factuality")
    with pytest.raises(BadRequest, match=f"run {wrong.pk} is a rm_factuality run"):
        campaign_suggest_settings_save(campaign=campaign, runs={"relevance": wrong.pk}, no_suggestion_share=0.2, order="input", order_seed=0)
