"""The bulk path of an import: foreign key checks skipped only where safe, binary COPY sent by a writer thread
while the file is read on, and the collector's freeze undone afterwards."""

import gc
import json
import sys
import threading
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction

from annotation.models import Comparison, Dataset, ErrorSpan, Example, FineGrainedFeedback, MissingInfo, Passage, Response
from annotation.qa.errors import Conflict
from annotation.qa.format import FormatError
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
    of_split = {"example__dataset__name": dataset, "example__split": split}
    of_feedback = {"feedback__response__example__dataset__name": dataset, "feedback__response__example__split": split}

    def grouped(queryset, key: str, *fields: str) -> dict:
        rows: dict = {}
        for row in queryset.values_list(key, *fields):
            rows.setdefault(row[0], []).append(row[1:])
        return rows

    passages = grouped(Passage.objects.filter(**of_split).order_by("number"), "example_id", "number", "title", "sentences")
    responses = grouped(
        Response.objects.filter(**of_split).order_by("number"),
        "example_id", "number", "text", "source_run", "reward_segments", "round",
    )
    feedback = grouped(
        FineGrainedFeedback.objects.filter(response__example__dataset__name=dataset, response__example__split=split)
        .order_by("id"),
        "response__example_id", "id", "response__number", "annotator__username", "corrected_prediction", "status",
    )
    errors = grouped(
        ErrorSpan.objects.filter(**of_feedback).order_by("position"),
        "feedback_id", "position", "error_type", "explanation", "start", "end",
    )
    missing = grouped(
        MissingInfo.objects.filter(**of_feedback).order_by("position"),
        "feedback_id", "position", "error_type", "passage_id", "sentence_ids",
    )
    comparisons = grouped(
        Comparison.objects.filter(**of_split).order_by("id"), "example_id", "annotator__username", "preference", "status"
    )
    rows = []
    examples = Example.objects.filter(dataset__name=dataset, split=split).order_by("position")
    for example_id, *example in examples.values_list("id", "position", "question", "gold", "has_feedback_format"):
        rows.append(tuple(example))
        rows += passages.get(example_id, []) + responses.get(example_id, [])
        for feedback_id, *fields in feedback.get(example_id, []):
            rows.append(tuple(fields))
            rows += errors.get(feedback_id, []) + missing.get(feedback_id, [])
        rows += comparisons.get(example_id, [])
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


def writer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "copy-writer"]


@pytest.fixture
def copies_sent(monkeypatch) -> list[str]:
    """The COPY statements the writer thread sent, in order (each import's batches are small: 40 examples)."""
    monkeypatch.setattr(datasets_service, "BATCH", 40)
    sent: list[str] = []
    send = bulk.CopySink._send

    def spy(self, sql, data):
        assert threading.current_thread().name == "copy-writer"
        sent.append(sql)
        return send(self, sql, data)

    monkeypatch.setattr(bulk.CopySink, "_send", spy)
    return sent


@needs_postgresql
@pytest.mark.django_db
def test_the_writer_thread_stores_what_one_thread_does(qa_feedback_dir, copies_sent, monkeypatch):
    switch = sys.getswitchinterval()
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="piped")
    assert len(copies_sent) == 13 * 8  # 500 examples in 13 batches of 8 COPYs (response 1, then the others)
    assert sys.getswitchinterval() == switch and not writer_threads()

    @contextmanager
    def inline(self):
        yield

    monkeypatch.setattr(bulk.CopySink, "pipelined", inline)
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="inline")
    assert len(copies_sent) == 13 * 8  # nothing more went through the thread
    piped, inline_rows = stored_split("qa", "piped"), stored_split("qa", "inline")
    assert len(piped) > 500 * 7 and piped == inline_rows
    # Ids were reserved ahead in a few trips, each row's its own: no id twice, children under their parents.
    ids = list(Response.objects.filter(example__split="piped").values_list("id", flat=True))
    assert len(ids) == len(set(ids)) == 2000


@needs_postgresql
@pytest.mark.django_db
def test_a_bad_example_after_some_batches_stores_nothing_and_ends_the_writer(qa_feedback_dir, copies_sent, tmp_path):
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text())
    records[300]["passages"] = 5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    switch = sys.getswitchinterval()
    with pytest.raises(FormatError, match="example 301"):
        dataset_import(path_or_file=path, dataset_name="qa", split="dev")
    assert copies_sent  # batches before the bad example had gone out
    assert not Example.objects.exists() and not Passage.objects.exists() and not Comparison.objects.exists()
    assert sys.getswitchinterval() == switch and not writer_threads()


@needs_postgresql
@pytest.mark.django_db
def test_a_copy_that_fails_in_the_writer_is_a_conflict_and_what_was_queued_after_it_is_not_sent(
    qa_feedback_dir, copies_sent, monkeypatch
):
    dataset = Dataset.objects.create(name="qa")
    Example.objects.create(dataset=dataset, split="dev", position=300, question="q", gold="g")
    monkeypatch.setattr(datasets_service, "_existing_split", lambda *args: None)
    with pytest.raises(Conflict, match="qa/dev changed during the import"):
        dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    # Example 300 is in the 8th batch: its examples' COPY failed, and nothing after it was sent.
    assert len(copies_sent) == 7 * 8 + 1 and '"annotation_example"' in copies_sent[-1]
    assert list(Example.objects.values_list("position", flat=True)) == [300]
    assert not Passage.objects.exists() and not FineGrainedFeedback.objects.exists()
    assert not writer_threads()


@needs_postgresql
@pytest.mark.django_db
def test_a_query_of_the_callers_after_a_copy_failed_in_the_writer_raises_the_copys_error():
    # The caller reserves ids while the writer sends COPYs. When a COPY fails, the transaction is aborted, and
    # the caller's next query fails with "current transaction is aborted": the COPY's error must come out.
    dataset = Dataset.objects.create(name="qa")
    Example.objects.create(dataset=dataset, split="dev", position=0, question="q", gold="g")
    columns = ["dataset_id", "split", "position", "question", "gold"]
    with pytest.raises(IntegrityError, match="duplicate key") as raised:
        with transaction.atomic():
            sink = bulk.row_sink()
            with sink.pipelined():
                sink.insert(Example, columns, [(dataset.pk, "dev", 0, "taken", "g")])
                writer = sink._writer
                for _ in range(6000):  # until the writer has run the COPY (it is not asked to)
                    if not writer._queue.unfinished_tasks:
                        break
                    threading.Event().wait(0.01)
                assert writer._queue.unfinished_tasks == 0 and writer.failed() is not None
                sink._reserve_ids(Response, 5)
    assert "current transaction is aborted" in str(raised.value.__context__)
    assert list(Example.objects.values_list("question", flat=True)) == ["q"]
    assert not writer_threads()


def test_a_writer_that_did_not_fail_leaves_the_callers_error_as_it_is():
    writer = bulk._Writer()
    writer.put(lambda: None)
    writer.wait()
    assert writer.failed() is None
    writer.close()
    assert writer.failed() is None  # closing is not a failure


def test_the_writer_raises_its_first_error_in_the_caller_and_runs_nothing_after_it():
    ran: list[int] = []
    writer = bulk._Writer()

    def fail():
        raise ValueError("the second write failed")

    writer.put(lambda: ran.append(1))
    writer.put(fail)
    writer.put(lambda: ran.append(3))
    with pytest.raises(ValueError, match="second write"):
        writer.wait()
    with pytest.raises(ValueError, match="second write"):
        writer.put(lambda: ran.append(4))
    writer.close()
    assert ran == [1]


def test_a_closing_writer_finishes_the_write_in_hand_and_drops_the_rest():
    started, release, ran = threading.Event(), threading.Event(), []
    writer = bulk._Writer()

    def slow():
        started.set()
        release.wait(timeout=60)
        ran.append("slow")

    writer.put(slow)
    writer.put(lambda: ran.append("queued"))
    assert started.wait(timeout=60)
    closing = threading.Thread(target=writer.close)
    closing.start()
    release.set()
    closing.join(timeout=60)
    assert not closing.is_alive() and ran == ["slow"] and not writer_threads()
