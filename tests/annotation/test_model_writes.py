"""Written-out saves (annotation/services/model_writes.py) store what the ORM's save stores."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from annotation.models import Assignment, AssignmentKind, AssignmentStatus, Comparison, FineGrainedFeedback, ItemNote
from annotation.services.model_writes import insert_row, update_columns, update_columns_if
from tests.annotation.annotate_data import make_campaign, make_dataset

pytestmark = pytest.mark.django_db

# The models the annotation requests write this way: a receiver on any of them would be skipped.
WRITTEN_OUT = (Assignment, FineGrainedFeedback, Comparison, ItemNote)


def _columns(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def test_no_signal_receiver_listens_to_the_models_written_out():
    for model in WRITTEN_OUT:
        assert not pre_save.has_listeners(model) and not post_save.has_listeners(model), model


def test_an_inserted_row_reads_back_as_the_orm_would_have_stored_it(make_user):
    anna = make_user("anna", role="annotator")
    campaign = make_campaign(make_dataset(examples=2), [anna])
    example = campaign.dataset.examples.order_by("position").first()
    lease = timezone.now() + timedelta(minutes=30)
    fields = dict(campaign=campaign, example=example, kind=AssignmentKind.FINE_GRAINED, annotator=anna,
                  status=AssignmentStatus.LEASED, lease_expires_at=lease)
    before = timezone.now()
    written = insert_row(Assignment(slot=0, **fields))
    by_orm = Assignment.objects.create(slot=1, **fields)
    assert written.pk is not None and written.pk != by_orm.pk and not written._state.adding
    stored, reference = Assignment.objects.get(pk=written.pk), Assignment.objects.get(pk=by_orm.pk)
    differs = {name for name, value in _columns(stored).items() if _columns(reference)[name] != value}
    assert differs == {"id", "slot", "created_at", "updated_at"}
    assert stored.draft == {} and stored.draft_version == 0 and stored.lease_expires_at == lease
    assert before <= stored.created_at == written.created_at and stored.updated_at == written.updated_at


def test_json_columns_round_trip_and_unique_constraints_still_refuse(make_user):
    anna = make_user("anna", role="annotator")
    campaign = make_campaign(make_dataset(examples=2), [anna])
    first, second = campaign.dataset.examples.order_by("position")[:2]
    now = timezone.now()
    record = insert_row(Comparison(example=first, annotator=anna, preference=[1, 2, 0, None, 1, 2], version=1,
                                   submit_token="t" * 32, submitted_at=now))
    assert Comparison.objects.get(pk=record.pk).preference == [1, 2, 0, None, 1, 2]
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_row(Comparison(example=second, annotator=anna, preference=[], version=1, submit_token="t" * 32))
    assert Comparison.objects.count() == 1


def test_update_columns_stores_the_named_columns_only_and_moves_auto_now(make_user):
    anna = make_user("anna", role="annotator")
    campaign = make_campaign(make_dataset(examples=1), [anna])
    item = Assignment.objects.create(campaign=campaign, example=campaign.dataset.examples.get(), kind=AssignmentKind.COMPARISON,
                                     annotator=anna, status=AssignmentStatus.LEASED, slot=0)
    stamped = item.updated_at
    item.draft = {"preference": [1, None, None, None, None, None]}
    item.draft_version = 3
    item.active_seconds = 99  # changed here but not named: stays as stored
    update_columns(item, ["draft", "draft_version", "updated_at"])
    stored = Assignment.objects.get(pk=item.pk)
    assert stored.draft == {"preference": [1, None, None, None, None, None]} and stored.draft_version == 3
    assert stored.active_seconds == 0 and stored.updated_at == item.updated_at > stamped


def test_update_columns_of_a_row_that_is_gone_raises_as_save_does(make_user):
    anna = make_user("anna", role="annotator")
    campaign = make_campaign(make_dataset(examples=1), [anna])
    item = Assignment.objects.create(campaign=campaign, example=campaign.dataset.examples.get(), kind=AssignmentKind.COMPARISON,
                                     annotator=anna, status=AssignmentStatus.LEASED, slot=0)
    Assignment.objects.filter(pk=item.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        update_columns(item, ["status", "updated_at"])


def test_update_columns_if_writes_only_where_the_row_still_holds_the_expected_values(make_user):
    anna = make_user("anna", role="annotator")
    campaign = make_campaign(make_dataset(examples=1), [anna])
    item = Assignment.objects.create(campaign=campaign, example=campaign.dataset.examples.get(), kind=AssignmentKind.COMPARISON,
                                     annotator=anna, status=AssignmentStatus.LEASED, slot=0)
    stored_before = _columns(Assignment.objects.get(pk=item.pk))
    item.draft, item.draft_version = {"preference": [0, 0, 0, 0, 0, 0]}, 1
    # Another request moved the row on: the version it expects is gone, so nothing is written.
    assert not update_columns_if(item, ["draft", "draft_version", "updated_at"], draft_version=5, status=AssignmentStatus.LEASED)
    assert not update_columns_if(item, ["draft", "draft_version", "updated_at"], draft_version=0, status=AssignmentStatus.EXPIRED)
    assert _columns(Assignment.objects.get(pk=item.pk)) == stored_before

    assert update_columns_if(item, ["draft", "draft_version", "updated_at"], draft_version=0, status=AssignmentStatus.LEASED)
    stored = Assignment.objects.get(pk=item.pk)
    assert stored.draft == {"preference": [0, 0, 0, 0, 0, 0]} and stored.draft_version == 1
    assert stored.updated_at == item.updated_at > stored_before["updated_at"]
    assert {name for name, value in _columns(stored).items() if stored_before[name] != value} == {"draft", "draft_version", "updated_at"}
