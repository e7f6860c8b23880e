"""Undo and redo of span edits: every span edit's answer names the draft operation that takes it back.

The page keeps these operations on its undo and redo stacks and sends them
through the same draft view, so replaying them must bring the stored draft
back exactly, explanations and span numbers included.
"""

import html as html_lib
import json
import re

import pytest
from django.urls import reverse

from annotation.models import CampaignTask
from annotation.qa import drafts
from annotation.qa.vocab import IRRELEVANT, REDUNDANT, UNVERIFIABLE, WRONG_GROUNDING
from annotation.services.campaigns import assignment_next
from tests.annotation.annotate_data import PASSAGES, RESPONSES, make_campaign, make_dataset, offsets_of

TEXT = RESPONSES[1]
HTMX = {"HTTP_HX_REQUEST": "true"}
REPEATED = "It was released on 31 August 2018."


@pytest.fixture
def item(annotator):
    dataset = make_dataset(examples=1)
    campaign = make_campaign(dataset, [annotator], task=CampaignTask.FINE_GRAINED)
    return assignment_next(campaign=campaign, annotator=annotator)


class Page:
    """Sends edits like annotate.js does, keeping its undo and redo stacks."""

    def __init__(self, client, assignment):
        self.client, self.assignment = client, assignment
        self.undo_stack: list[dict] = []
        self.redo_stack: list[dict] = []

    def draft(self) -> dict:
        self.assignment.refresh_from_db()
        return self.assignment.draft

    def send(self, values: dict, history: str = ""):
        self.assignment.refresh_from_db()
        body = {**values, "draft_version": self.assignment.draft_version}
        if history:
            body["history"] = history
        response = self.client.post(reverse("annotation:annotate_draft", args=[self.assignment.pk]), body, **HTMX)
        match = re.search(r'id="fg-spans"[^>]* data-inverse="([^"]*)" data-history="([^"]*)"', response.content.decode())
        if match and match.group(1):
            inverse = json.loads(html_lib.unescape(match.group(1)))
            assert match.group(2) == history
            if history == "undo":
                self.redo_stack.append(inverse)
            elif history == "redo":
                self.undo_stack.append(inverse)
            else:
                self.undo_stack.append(inverse)
                self.redo_stack.clear()
        return response

    def undo(self):
        return self.send(self.undo_stack.pop(), "undo")

    def redo(self):
        return self.send(self.redo_stack.pop(), "redo")


def mark(page: Page, phrase: str, error_type: str, occurrence: int = 1):
    start, end = offsets_of(TEXT, phrase, occurrence)
    response = page.send({"op": "add_span", "start": start, "end": end, "type": error_type})
    assert response.status_code == 200, response.content
    return response


def test_undo_and_redo_walk_every_span_edit_back_and_forth(annotator_client, item):
    page = Page(annotator_client, item)
    mark(page, "ten million copies", UNVERIFIABLE)
    after_first = page.draft()
    mark(page, REPEATED, REDUNDANT, occurrence=2)
    page.send({"explanation-1": REPEATED})  # typing, not a span edit: nothing to undo
    after_typing = page.draft()
    assert len(page.undo_stack) == 2
    mark(page, "born in Perth, Australia.", WRONG_GROUNDING)
    page.send({"op": "set_grounding", "index": 2, "passage_id": 2, "sentence_ids": "2"})
    after_citing = page.draft()
    page.send({"op": "retype_span", "index": 1, "type": IRRELEVANT})  # drops the explanation
    after_retype = page.draft()
    page.send({"op": "remove_span", "index": 0})
    after_all = page.draft()
    assert [e["error type"] for e in after_all["errors"]] == [IRRELEVANT, WRONG_GROUNDING]

    page.undo()  # the removal: span 1 is back at number 1
    assert page.draft() == after_retype
    page.undo()  # the retype: Repetitive again, its explanation back
    assert page.draft() == after_citing
    assert page.draft()["errors"][1] == {"error type": REDUNDANT, "explanation": REPEATED, **_where(REPEATED, 2)}
    page.undo()  # the citation
    assert page.draft()["errors"][2]["explanation"] == ""
    page.undo()  # the Inconsistent Fact span
    assert page.draft() == after_typing
    page.undo()
    assert page.draft() == after_first
    page.undo()
    assert page.draft()["errors"] == []
    assert not page.undo_stack and len(page.redo_stack) == 6

    for _ in range(6):
        assert page.redo().status_code == 200
    assert page.draft() == after_all
    assert len(page.undo_stack) == 6 and not page.redo_stack


def _where(phrase: str, occurrence: int = 1) -> dict:
    start, end = offsets_of(TEXT, phrase, occurrence)
    return {"start": start, "end": end}


def test_a_removed_span_comes_back_with_its_number_and_citation(annotator_client, item):
    page = Page(annotator_client, item)
    mark(page, "ten million copies", UNVERIFIABLE)
    mark(page, "born in Perth, Australia.", WRONG_GROUNDING)
    page.send({"op": "set_grounding", "index": 1, "passage_id": 2, "sentence_ids": "2"})
    before = page.draft()["errors"]
    page.send({"op": "remove_span", "index": 0})
    response = page.undo()
    assert response.status_code == 200
    assert page.draft()["errors"] == before
    html = response.content.decode()
    assert "Undone: span 1 (Unverifiable) is back." in html
    assert 'data-focus-index=""' in html  # the page puts the focus back itself after an undo


def test_a_new_edit_ends_the_redo_chain(annotator_client, item):
    page = Page(annotator_client, item)
    mark(page, "ten million copies", UNVERIFIABLE)
    page.undo()
    assert page.redo_stack
    mark(page, "first week.", IRRELEVANT)
    assert not page.redo_stack


def test_an_edit_that_changes_nothing_leaves_nothing_to_undo(annotator_client, item):
    page = Page(annotator_client, item)
    mark(page, "ten million copies", UNVERIFIABLE)
    page.send({"op": "retype_span", "index": 0, "type": UNVERIFIABLE})
    assert len(page.undo_stack) == 1


def test_putting_a_span_back_gets_the_same_checks_as_marking_one(annotator_client, item):
    page = Page(annotator_client, item)
    mark(page, "ten million copies", UNVERIFIABLE)
    start, end = offsets_of(TEXT, "sold ten")
    overlapping = page.send({"op": "insert_span", "index": 0, "start": start, "end": end, "type": IRRELEVANT, "explanation": ""})
    assert overlapping.status_code == 422
    assert "overlaps span 1" in overlapping.content.decode()
    bad_citation = page.send(
        {"op": "replace_span", "index": 0, **_where("ten million copies"), "type": WRONG_GROUNDING, "explanation": '{"passage_id":7,"sentence_id":[1]}'}
    )
    assert bad_citation.status_code == 422 and "There is no passage 7" in bad_citation.content.decode()
    nowhere = page.send({"op": "insert_span", "index": 5, **_where("first week."), "type": IRRELEVANT, "explanation": ""})
    assert nowhere.status_code == 422
    assert len(page.draft()["errors"]) == 1


def test_put_error_keeps_only_the_explanation_its_type_takes():
    draft = drafts.empty_fine_grained(TEXT)
    start, end = offsets_of(TEXT, "ten million copies")
    drafts.put_error(draft, text=TEXT, index=0, start=start, end=end, error_type=IRRELEVANT, explanation="stray", passages=PASSAGES)
    assert draft["errors"][0]["explanation"] == ""
    drafts.put_error(
        draft, text=TEXT, index=0, start=start, end=end, error_type=WRONG_GROUNDING,
        explanation='{"passage_id": 2, "sentence_id": [3, 2, 2]}', passages=PASSAGES, replace=True,
    )
    assert draft["errors"] == [{"error type": WRONG_GROUNDING, "explanation": '{"passage_id":2,"sentence_id":[2,3]}', "start": start, "end": end}]
