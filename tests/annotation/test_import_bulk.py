"""The bulk path of an import: foreign key checks skipped only where safe, the file read ahead in a thread,
binary COPY, and the collector's freeze undone afterwards."""

import gc
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from annotation.models import Comparison, Dataset, ErrorSpan, Example, FineGrainedFeedback, MissingInfo, Passage, Response
from annotation.qa.errors import Conflict
from annotation.services import bulk
from annotation.services import datasets as datasets_service
from annotation.services.datasets import dataset_import

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="COPY and session_replication_role are PostgreSQL's"
)


def replication_role() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        return cursor.fetchone()[0]


def stored_split(dataset: str, split: str) -> list[tuple]:
    """Everything an import stores for a split, by example position, without ids or timestamps."""
    examples = Example.objects.filter(dataset__name=dataset, split=split).order_by("position")
    rows = []
    for example in examples:
        rows.append((example.position, example.question, example.gold, example.has_feedback_format))
        rows += Passage.objects.filter(example=example).order_by("number").values_list("number", "title", "sentences")
        rows += Response.objects.filter(example=example).order_by("number").values_list(
            "number", "text", "source_run", "reward_segments", "round"
        )
        for feedback in FineGrainedFeedback.objects.filter(response__example=example).order_by("id"):
            rows.append(
                (feedback.response.number, feedback.annotator.username, feedback.corrected_prediction, feedback.status)
            )
            rows += feedback.errors.order_by("position").values_list("position", "error_type", "explanation", "start", "end")
            rows += feedback.missing_info.order_by("position").values_list("position", "error_type", "passage_id", "sentence_ids")
        rows += Comparison.objects.filter(example=example).values_list("annotator__username", "preference", "status")
    return rows


@pytest.fixture
def trust_seen(monkeypatch) -> list[bool]:
    """Whether each import's writes ran with the foreign key checks off."""
    seen: list[bool] = []
    trusted = bulk.RowSink.trusted_references, bulk.CopySink.trusted_references

    def spying(original):
        def spy(self, locks):
            manager = original(self, locks)

            class Recording:
                def __enter__(self):
                    value = manager.__enter__()
                    seen.append(value)
                    return value

                def __exit__(self, *exc_info):
                    return manager.__exit__(*exc_info)

            return Recording()

        return spy

    monkeypatch.setattr(bulk.RowSink, "trusted_references", spying(trusted[0]))
    monkeypatch.setattr(bulk.CopySink, "trusted_references", spying(trusted[1]))
    return seen


@needs_postgresql
@pytest.mark.django_db
def test_a_new_split_is_written_without_per_row_checks_and_they_come_back_on_after(qa_feedback_dir, trust_seen):
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    assert trust_seen == [True]
    assert replication_role() == "origin"  # the rest of the transaction checks as usual


@needs_postgresql
@pytest.mark.django_db
def test_both_paths_store_identical_rows(qa_feedback_dir, trust_seen, monkeypatch):
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="trusted")
    # A setting the server refuses: the attempt fails inside its savepoint and the import goes on, checked.
    monkeypatch.setattr(bulk, "_TRUST", "SET LOCAL session_replication_role = no_such_role")
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="checked")
    assert trust_seen == [True, False]
    trusted, checked = stored_split("qa", "trusted"), stored_split("qa", "checked")
    assert len(trusted) > 500 * 7 and trusted == checked


@needs_postgresql
@pytest.mark.django_db
def test_the_text_copy_format_stores_what_the_binary_one_does(qa_feedback_dir, monkeypatch):
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="binary")
    dataset_import(path_or_file=qa_feedback_dir / "dev.json", dataset_name="qa", split="binary")
    # A column type psycopg would not know (none today) sends the table in the text format.
    monkeypatch.setattr(bulk, "postgres", SimpleNamespace(types={}))
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="text")
    dataset_import(path_or_file=qa_feedback_dir / "dev.json", dataset_name="qa", split="text")
    assert stored_split("qa", "binary") == stored_split("qa", "text")
    inputs = Example.objects.filter(dataset__name="qa").order_by("position", "split")
    pairs = list(inputs.values_list("split", "answers", "input_passages", "policy_text", "input_position"))
    assert [row[1:] for row in pairs[0::2]] == [row[1:] for row in pairs[1::2]] and pairs[0][1]


@needs_postgresql
@pytest.mark.django_db
def test_a_role_that_may_not_turn_the_checks_off_keeps_them_and_its_transaction(qa_feedback_dir):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL ROLE pg_monitor")  # a built-in role without the superuser's rights
        sink = bulk.row_sink()
        with sink.trusted_references([]) as trusted:
            assert not trusted
            assert replication_role() == "origin"  # the transaction is still usable after the refusal
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


@needs_postgresql
@pytest.mark.django_db
def test_the_checks_stay_on_when_a_referenced_row_is_gone(make_user):
    author = make_user("gone")
    author_pk = author.pk
    author.delete()
    dataset = Dataset.objects.create(name="qa")
    with transaction.atomic():
        with bulk.row_sink().trusted_references([(Dataset, dataset.pk), (get_user_model(), author_pk)]) as trusted:
            assert not trusted
            assert replication_role() == "origin"


@needs_postgresql
@pytest.mark.django_db
def test_a_joined_import_keeps_every_check(qa_feedback_dir, trust_seen):
    dataset_import(path_or_file=qa_feedback_dir / "dev.json", dataset_name="qa", split="dev")
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    assert trust_seen == [True]  # the first created the split; the second references its examples


@pytest.mark.django_db(transaction=True)
def test_an_import_whose_author_was_deleted_is_refused_at_commit_and_stores_nothing(qa_feedback_dir, monkeypatch):
    deleted = get_user_model().objects.create(username="import@qa")
    deleted_pk = deleted.pk
    deleted.delete()
    deleted.pk = deleted_pk  # an author object that outlived its row
    monkeypatch.setattr(datasets_service, "import_user_for", lambda name: deleted)

    with pytest.raises(Conflict):
        dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    assert not Example.objects.exists() and not FineGrainedFeedback.objects.exists()
    assert not ErrorSpan.objects.exists() and not MissingInfo.objects.exists()


@pytest.mark.django_db
def test_the_collector_freeze_is_undone_after_an_import(qa_feedback_dir):
    frozen_before = gc.get_freeze_count()
    dataset_import(path_or_file=qa_feedback_dir / "dev.json", dataset_name="qa", split="dev")
    assert gc.get_freeze_count() == frozen_before


def test_every_foreign_key_without_an_index_of_its_own_leads_a_unique_constraint():
    from django.apps import apps
    from django.db import models

    unindexed = [
        (model, field)
        for model in apps.get_app_config("annotation").get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, models.ForeignKey) and not field.db_index
    ]
    assert len(unindexed) == 7  # example.dataset, passage/response/comparison.example, feedback.response, ...
    for model, field in unindexed:
        leading = [
            c.fields[0] for c in model._meta.constraints if isinstance(c, models.UniqueConstraint) and c.fields
        ]
        assert field.name in leading, f"{model.__name__}.{field.name} lookups would scan the table"


@pytest.mark.django_db
def test_a_position_taken_under_the_import_is_a_conflict_and_stores_nothing(qa_feedback_dir, monkeypatch):
    # Another import filled the split after this one found it empty: example 300's position is taken. COPY's
    # unique violation must come out in Django's terms (IntegrityError), which the import turns into a Conflict.
    dataset = Dataset.objects.create(name="qa")
    Example.objects.create(dataset=dataset, split="dev", position=300, question="q", gold="g")
    monkeypatch.setattr(datasets_service, "_existing_split", lambda *args: None)
    with pytest.raises(Conflict, match="qa/dev changed during the import"):
        dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    assert list(Example.objects.values_list("position", flat=True)) == [300]
    assert not Passage.objects.exists() and not FineGrainedFeedback.objects.exists()
