"""Written-out reads (annotation/selectors/model_rows.py) give what the ORM gives, and lock where asked."""

from datetime import timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from annotation.models import Assignment, AssignmentKind, AssignmentStatus
from annotation.selectors.campaigns import locked_assignment
from annotation.selectors.model_rows import ModelColumns, first_where, starts
from annotation.services.campaigns import assignment_next
from tests.annotation.annotate_data import make_campaign, make_dataset

pytestmark = pytest.mark.django_db


def _values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.fixture
def leases(annotator):
    campaign = make_campaign(make_dataset(examples=3), [annotator])
    first = assignment_next(campaign=campaign, annotator=annotator)
    second = Assignment.objects.create(campaign=campaign, example=first.example, kind=AssignmentKind.COMPARISON,
                                       annotator=annotator, lease_expires_at=first.lease_expires_at, draft={"preference": [1]})
    Assignment.objects.filter(pk=second.pk).update(created_at=first.created_at - timedelta(seconds=5))
    return campaign, first, second


def test_the_first_row_by_the_order_asked_for_with_every_column_converted(leases, annotator):
    campaign, first, second = leases
    by_id = first_where(Assignment, campaign_id=campaign.pk, annotator_id=annotator.pk)
    by_age = first_where(Assignment, campaign_id=campaign.pk, annotator_id=annotator.pk, order_by=("created_at", "id"))
    assert by_id.pk == first.pk and by_age.pk == second.pk
    assert _values(by_age) == _values(Assignment.objects.get(pk=second.pk)) and by_age.draft == {"preference": [1]}
    assert by_age.lease_expires_at.tzinfo is not None and not by_age._state.adding
    assert first_where(Assignment, campaign_id=campaign.pk, status=AssignmentStatus.SUBMITTED) is None


def test_none_matches_null_and_no_filter_matches_every_row_as_in_the_orm(leases, annotator):
    campaign, first, second = leases
    Assignment.objects.filter(pk=second.pk).update(lease_expires_at=None)
    for equal in ({"lease_expires_at": None}, {"lease_expires_at": None, "campaign_id": campaign.pk}, {}):
        expected = Assignment.objects.filter(**equal).order_by("id").first()
        found = first_where(Assignment, **equal)
        assert expected is not None and found.pk == expected.pk, equal
    assert first_where(Assignment, lease_expires_at=None).pk == second.pk
    assert first_where(Assignment, lease_expires_at=None, annotator_id=annotator.pk + 1000) is None
    # The same names with a value, then with None, are two statements (the SQL is kept per shape).
    assert first_where(Assignment, lease_expires_at=first.lease_expires_at).pk == first.pk


def test_a_column_the_model_does_not_have_is_refused_by_name(leases):
    with pytest.raises(ValueError, match="Assignment has no column 'campaign'"):
        first_where(Assignment, campaign=leases[0].pk)
    with pytest.raises(ValueError, match="no column 'created'"):
        first_where(Assignment, id=1, order_by=("created",))


def test_a_locking_read_locks_where_the_database_has_row_locks(leases):
    first = leases[1]
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        assert locked_assignment(assignment_id=first.pk).pk == first.pk
    assert captured[0]["sql"].endswith("FOR UPDATE") == connection.features.has_select_for_update
    with transaction.atomic(), pytest.raises(Assignment.DoesNotExist):
        locked_assignment(assignment_id=987654)


@pytest.mark.django_db(transaction=True)
def test_a_locking_read_outside_a_transaction_is_refused(leases):
    with pytest.raises(TransactionManagementError, match="inside one"):
        first_where(Assignment, lock=True, id=leases[1].pk)
    assert first_where(Assignment, id=leases[1].pk).pk == leases[1].pk


def test_an_outer_joined_row_of_nulls_builds_nothing():
    columns = ModelColumns(Assignment, "a")
    assert columns.build([None] * columns.width, 0, connections[DEFAULT_DB_ALIAS]) is None
    assert starts(columns, ModelColumns(Assignment, "b")) == [0, columns.width]
