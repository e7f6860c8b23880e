"""How many queries the annotation page's requests make, pinned so that a change that adds one is noticed.

Counted on the test database, where each transaction shows as a SAVEPOINT and
its RELEASE (on PostgreSQL in production they are BEGIN and COMMIT, which
Django does not count). Sessions are in the database here; with CACHE_URL set
they are read from the cache, one query less per request.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import CampaignTask
from annotation.services.campaigns import assignment_next
from tests.annotation.annotate_data import make_campaign, make_dataset
from tests.annotation.test_annotate_views import HTMX, open_page

pytestmark = pytest.mark.django_db

# Before the first cut (issue 9): open 10, draft edit 11, submit 23 (fine-grained) and 24 (comparison); before
# the second (the user with their roles, the item with its responses, one statement each): 8, 10/9, 19/18.
# Opening an item leased moments ago (as after a submit) writes nothing: 6 before, one more when the lease is renewed.
OPEN_QUERIES = 5
# An edit after the first (the first reads the stored annotation to start from). The partials an edit answers
# with show no passage, so an edit reads the passages only when it cites them (or quotes a missing-information
# entry): 8 and 7 before that. Session, user, item, then one UPDATE that checks the draft version and status the
# page read (7 before: a transaction that locked the row, read it and updated it).
DRAFT_QUERIES = {CampaignTask.FINE_GRAINED: 4, CampaignTask.COMPARISON: 4}
# Session, the user with their roles, the item with its responses (and, fine-grained, its passages); lock the item and the
# annotator's row, store it, finish the item (and answer the reviewers' send-backs on it: one UPDATE); then
# lease the next: held item?, first open item (on PostgreSQL after the statement that plans it for its values, without JIT),
# its live slots, the new lease.
SUBMIT_QUERIES = {CampaignTask.FINE_GRAINED: 17, CampaignTask.COMPARISON: 16}


def _counted(request) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = request()
    assert response.status_code == 200, response.content[:300]
    return len(captured), [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("task", [CampaignTask.FINE_GRAINED, CampaignTask.COMPARISON])
def test_open_edit_and_submit_stay_within_their_query_budget(annotator_client, annotator, task):
    campaign = make_campaign(make_dataset(examples=3), [annotator], task=task)
    item = assignment_next(campaign=campaign, annotator=annotator)
    url = reverse("annotation:annotate", args=[item.pk])
    open_page(annotator_client, item)  # the first open reads the stored annotation; count a later one

    count, sql = _counted(lambda: annotator_client.get(url))
    assert count == OPEN_QUERIES, "\n".join(sql)

    fields = open_page(annotator_client, item)
    answer = {"corrected-prediction": "Fixed."} if task == CampaignTask.FINE_GRAINED else {
        f"pair-{i}": "first" for i in range(6)
    }
    annotator_client.post(url + "draft/", {**answer, "draft_version": fields["draft_version"]}, **HTMX)
    version = str(int(fields["draft_version"]) + 1)
    count, sql = _counted(lambda: annotator_client.post(url + "draft/", {**answer, "draft_version": version}, **HTMX))
    assert count == DRAFT_QUERIES[task], "\n".join(sql)

    fields["draft_version"] = str(int(version) + 1)
    count, sql = _counted(lambda: annotator_client.post(url + "submit/", {**fields, **answer}, **HTMX))
    assert count == SUBMIT_QUERIES[task] + (connection.vendor == "postgresql"), "\n".join(sql)
    if connection.features.has_select_for_update:
        # A row lock taken through a join locks the joined rows too (the dataset's row: every submit on it would wait).
        locks = [query for query in sql if "FOR UPDATE" in query]
        assert locks and not any(" JOIN " in query.split(" WHERE ")[0] for query in locks), "\n".join(locks)
