"""Import and export through the management commands: byte-exact round trips and refusals of bad input."""

import filecmp
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from annotation.models import (
    Comparison,
    Dataset,
    ErrorSpan,
    Example,
    FeedbackStatus,
    FineGrainedFeedback,
    MissingInfo,
    Passage,
    Response,
)
from annotation.qa.errors import BadRequest, NotFound
from annotation.qa.format import FormatError
from annotation.qa.vocab import FIRST_PREDICTION, IRRELEVANT
from annotation.services import datasets as datasets_service
from annotation.services.datasets import dataset_export, dataset_import
from annotation.services.example_rows import FeedbackRows

BAD = 17  # the index of the example the bad-input tests break (messages say "example 18"); the 17 before it are fine


def run(name: str, *args, **options) -> str:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue()


def import_file(path, dataset="qa-feedback", split="dev") -> str:
    return run("import_qa_feedback", str(path), dataset=dataset, split=split)


def export_file(out, fmt, dataset="qa-feedback", split="dev") -> str:
    return run("export_qa_feedback", dataset=dataset, split=split, out=str(out), fmt=fmt)


def assert_nothing_written():
    for model in (Dataset, Example, Passage, Response, FineGrainedFeedback, ErrorSpan, MissingInfo, Comparison):
        assert not model.objects.exists(), f"{model.__name__} rows were written"
    assert not get_user_model().objects.filter(username__startswith="import@").exists()


@pytest.fixture(scope="module")
def dev_feedback(qa_feedback_dir) -> list[dict]:
    return json.loads((qa_feedback_dir / "dev_feedback.json").read_text())


@pytest.fixture
def records(dev_feedback) -> list[dict]:
    """The first 20 shared examples, fresh for each test to break."""
    return json.loads(json.dumps(dev_feedback[:20]))


@pytest.fixture
def refused(tmp_path, db):
    """Write records (or raw text) to a file, import it, and return the command's error message."""

    def _refused(content) -> str:
        path = tmp_path / "bad.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
        with pytest.raises(CommandError) as caught:
            import_file(path)
        assert_nothing_written()
        return str(caught.value)

    return _refused


@pytest.mark.django_db
def test_it_round_trips_both_shared_files_byte_for_byte(qa_feedback_dir, tmp_path):
    feedback_file, inputs_file = qa_feedback_dir / "dev_feedback.json", qa_feedback_dir / "dev.json"

    assert "Imported 500 examples (feedback format, 500 new)" in import_file(feedback_file)
    assert "Imported 500 examples (inputs format, joined to 500 existing examples)" in import_file(inputs_file)
    assert Example.objects.count() == 500
    assert ErrorSpan.objects.count() == 1373 and MissingInfo.objects.count() == 842

    export_file(tmp_path / "dev_feedback.json", "feedback")
    export_file(tmp_path / "dev.json", "inputs")
    assert filecmp.cmp(tmp_path / "dev_feedback.json", feedback_file, shallow=False)
    assert filecmp.cmp(tmp_path / "dev.json", inputs_file, shallow=False)


@pytest.mark.django_db
def test_it_round_trips_when_the_inputs_file_comes_first(qa_feedback_dir, tmp_path):
    # dev.json lists the questions in another order, so joining the feedback file renumbers positions.
    feedback_file, inputs_file = qa_feedback_dir / "dev_feedback.json", qa_feedback_dir / "dev.json"
    dataset_import(path_or_file=inputs_file, dataset_name="qa", split="dev")
    summary = dataset_import(path_or_file=feedback_file, dataset_name="qa", split="dev")
    assert (summary.created, summary.joined) == (0, 500)

    dataset_export(dataset="qa", split="dev", fmt="feedback", out=tmp_path / "fb.json")
    dataset_export(dataset="qa", split="dev", fmt="inputs", out=tmp_path / "in.json")
    assert filecmp.cmp(tmp_path / "fb.json", feedback_file, shallow=False)
    assert filecmp.cmp(tmp_path / "in.json", inputs_file, shallow=False)
    first = json.loads(feedback_file.read_text())[0]["question"]
    assert Example.objects.get(dataset__name="qa", position=0).question == first


@pytest.mark.django_db
def test_it_gives_imported_feedback_to_an_inactive_system_account(qa_feedback_dir):
    import_file(qa_feedback_dir / "dev_feedback.json")
    author = get_user_model().objects.get(username="import@qa-feedback")
    assert not author.is_active and not author.has_usable_password()
    assert FineGrainedFeedback.objects.filter(annotator=author, status=FeedbackStatus.SUBMITTED).count() == 500
    assert set(FineGrainedFeedback.objects.values_list("response__number", flat=True)) == {1}
    assert Comparison.objects.filter(annotator=author).count() == 500


def test_it_refuses_a_file_that_is_not_json(refused):
    message = refused('[{"question": "Who')
    assert "nothing was written" in message
    assert "is not valid JSON: Unterminated string starting at (line 1, column 15)" in message


def test_it_refuses_a_file_of_the_wrong_shape(refused, records):
    assert "the file must hold a list of examples, not an object" in refused({"examples": records})
    records[BAD] = [records[BAD]["question"]]
    assert f"example {BAD + 1}: must be an object, not a list" in refused(records)


def test_it_refuses_an_example_with_a_missing_key(refused, records):
    del records[BAD]["feedback"]["errors"][1]["end"]
    assert f"example {BAD + 1}, field feedback.errors[1].end: missing key" in refused(records)


def test_it_refuses_a_span_outside_the_prediction(refused, records):
    length = len(records[BAD][FIRST_PREDICTION])
    records[BAD]["feedback"]["errors"][1]["end"] = length + 4
    message = refused(records)
    assert (
        f"example {BAD + 1}, field feedback.errors[1].end: end {length + 4} is past the end of prediction 1 (length {length})"
        in message
    )


def test_it_refuses_a_span_off_word_boundaries(refused, records):
    start = records[BAD]["feedback"]["errors"][0]["start"]
    records[BAD]["feedback"]["errors"][0]["start"] = start + 1
    message = refused(records)
    assert f"example {BAD + 1}, field feedback.errors[0].start: start {start + 1} is not at the start of a word" in message


def test_it_refuses_overlapping_spans(refused, records):
    errors = records[BAD]["feedback"]["errors"]
    errors.append(dict(errors[0], **{"error type": IRRELEVANT}))
    first = errors[0]
    message = refused(records)
    assert (
        f"example {BAD + 1}, field feedback.errors[2]: overlaps error 0 (characters {first['start']}-{first['end']})"
        in message
    )


def test_it_refuses_a_preference_list_of_the_wrong_length(refused, records):
    records[BAD]["preference"] = records[BAD]["preference"][:5]
    message = refused(records)
    assert f"example {BAD + 1}, field preference: must hold 6 values (one per pair of predictions), not 5" in message


def test_it_refuses_preference_values_other_than_0_1_2(refused, records):
    records[BAD]["preference"][3] = 3
    assert f"example {BAD + 1}, field preference[3]: 3 is not 0, 1 or 2 (pair 2-3)" in refused(records)


def test_it_refuses_a_passage_id_that_does_not_exist(refused, records):
    records[BAD]["feedback"]["missing-info"][0]["passage_id"] = 4
    message = refused(records)
    assert (
        f"example {BAD + 1}, field feedback.missing-info[0].passage_id: passage 4 does not exist (the example has passages 1-3)"
        in message
    )


def test_it_refuses_a_sentence_id_that_does_not_exist(refused, records):
    records[BAD]["feedback"]["missing-info"][0]["sentence_id"] = [1, 9]
    message = refused(records)
    assert (
        f"example {BAD + 1}, field feedback.missing-info[0].sentence_id[1]: sentence 9 does not exist in passage 2 (it has sentences 1-6)"
        in message
    )


def test_it_refuses_an_unknown_error_type(refused, records):
    records[BAD]["feedback"]["errors"][0]["error type"] = "Typo"
    assert f"example {BAD + 1}, field feedback.errors[0].error type: 'Typo' is not one of" in refused(records)


def test_it_refuses_a_policy_input_example_with_a_missing_key(refused, qa_feedback_dir):
    inputs = json.loads((qa_feedback_dir / "dev.json").read_text())[:20]
    del inputs[BAD]["answer"]
    assert f"example {BAD + 1}, field answer: missing key" in refused(inputs)


def test_it_lists_further_problems_after_the_first(refused, records):
    records[3]["preference"] = [1]
    records[BAD]["gold"] = None
    message = refused(records)
    assert message.splitlines()[0].endswith(
        "example 4, field preference: must hold 6 values (one per pair of predictions), not 1"
    )
    assert f"example {BAD + 1}, field gold: must be a string, not null" in message


@pytest.mark.django_db
def test_it_refuses_to_import_a_format_the_split_already_holds(qa_feedback_dir):
    import_file(qa_feedback_dir / "dev_feedback.json")
    with pytest.raises(CommandError, match=r"qa-feedback/dev already holds the feedback format \(500 examples\)"):
        import_file(qa_feedback_dir / "dev_feedback.json")
    assert Example.objects.count() == 500 and Comparison.objects.count() == 500


@pytest.mark.django_db
def test_it_refuses_to_join_a_file_with_other_questions(qa_feedback_dir, tmp_path, records):
    import_file(qa_feedback_dir / "dev.json")
    records[BAD]["question"] = "Who wrote this test?"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(records))
    with pytest.raises(CommandError) as caught:
        import_file(path)
    message = str(caught.value)
    assert (
        f"example {BAD + 1}, field question: no example of qa-feedback/dev has this question ('Who wrote this test?')"
        in message
    )
    assert "field question: 481 examples of qa-feedback/dev have no counterpart in the file" in message
    assert not Example.objects.filter(has_feedback_format=True).exists()
    assert not Response.objects.exists() and not Passage.objects.exists()


@pytest.mark.django_db
def test_it_writes_nothing_when_a_write_fails_midway(qa_feedback_dir, monkeypatch):
    calls = []
    original = FeedbackRows._write_details

    def failing_write_details(self, pairs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return original(self, pairs)

    monkeypatch.setattr(FeedbackRows, "_write_details", failing_write_details)
    monkeypatch.setattr(datasets_service, "BATCH", 100)  # five batches: the third one fails
    with pytest.raises(RuntimeError, match="disk full"):
        dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    assert len(calls) == 3
    assert_nothing_written()


@pytest.mark.django_db
@pytest.mark.parametrize(("dataset", "split"), [("Bad Name", "dev"), ("qa", "dev/1"), ("qa", "x" * 33)])
def test_it_refuses_names_that_are_not_slugs(qa_feedback_dir, dataset, split):
    with pytest.raises(BadRequest, match="must be 1-"):
        dataset_import(path_or_file=qa_feedback_dir / "dev.json", dataset_name=dataset, split=split)
    assert_nothing_written()


@pytest.mark.django_db
def test_it_explains_an_export_with_nothing_to_write(qa_feedback_dir, tmp_path):
    import_file(qa_feedback_dir / "dev.json")
    with pytest.raises(CommandError, match="qa-feedback/dev has no examples in the feedback format"):
        export_file(tmp_path / "out.json", "feedback")
    with pytest.raises(CommandError, match=r"no dataset named 'nope' \(datasets: qa-feedback\)"):
        export_file(tmp_path / "out.json", "inputs", dataset="nope")
    assert not (tmp_path / "out.json").exists()


@pytest.mark.django_db
def test_it_refuses_an_export_where_no_example_is_complete_and_writes_no_file(qa_feedback_dir, tmp_path):
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    Comparison.objects.update(status=FeedbackStatus.DRAFT)
    folder = tmp_path / "exports"
    folder.mkdir()
    with pytest.raises(NotFound, match="qa/dev has no examples in the feedback format"):
        dataset_export(dataset="qa", split="dev", fmt="feedback", out=folder / "out.json")
    assert list(folder.iterdir()) == []


@pytest.mark.django_db
def test_its_progress_ends_at_the_records_written_when_some_examples_are_left_out(qa_feedback_dir, tmp_path):
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    Comparison.objects.filter(example__position__in=[3, 250, 499]).update(status=FeedbackStatus.DRAFT)
    calls = []
    summary = dataset_export(
        dataset="qa", split="dev", fmt="feedback", out=tmp_path / "out.json", progress=lambda *c: calls.append(c)
    )
    assert summary.examples == 497
    assert all(done <= total for done, total in calls)
    assert [done for done, _ in calls[:-1]] == list(range(1, 498))
    assert calls[-1] == (497, 497)
    written = json.loads((tmp_path / "out.json").read_text())
    assert len(written) == 497 and all(record["preference"] for record in written)


@pytest.mark.django_db
def test_it_draws_progress_bars_on_stderr(qa_feedback_dir, tmp_path):
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(
        "import_qa_feedback", str(qa_feedback_dir / "dev.json"), dataset="qa", split="dev", stdout=stdout, stderr=stderr
    )
    # One pass: the bar follows the bytes read, examples are checked and written as they come.
    assert "importing: 100%" in stderr.getvalue() and "500 examples" in stderr.getvalue()
    assert "Imported 500 examples" in stdout.getvalue() and "%" not in stdout.getvalue()
    stderr = io.StringIO()
    call_command(
        "export_qa_feedback",
        dataset="qa",
        split="dev",
        out=str(tmp_path / "o.json"),
        fmt="inputs",
        stdout=stdout,
        stderr=stderr,
    )
    assert "exporting: 100%" in stderr.getvalue()


@pytest.mark.django_db
def test_it_reports_format_errors_from_the_service_with_index_and_field(records, tmp_path):
    records[BAD]["feedback"]["errors"][0]["end"] = 10_000
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(FormatError) as caught:
        dataset_import(path_or_file=path, dataset_name="qa", split="dev")
    assert (caught.value.index, caught.value.field) == (BAD, "feedback.errors[0].end")
    assert_nothing_written()


# --- refusals at the edge: what the database cannot store, named by example and field ------------------


def _with(records, marker_value, raw: str) -> str:
    """The records as JSON text with the value `marker_value` replaced by raw JSON text."""
    return json.dumps(records, indent=2).replace(json.dumps(marker_value), raw)


def test_it_refuses_a_nul_character(refused, records):
    records[BAD]["feedback"]["corrected-prediction"] = "fine\x00 text"
    message = refused(records)
    assert f"example {BAD + 1}, field feedback.corrected-prediction: holds a NUL character (\\u0000)" in message


def test_it_refuses_a_lone_surrogate_in_a_value_or_a_key(refused, records):
    records[BAD]["passages"][1][2] = "half a pair: \ud83d"
    message = refused(records)
    assert f"example {BAD + 1}, field passages[1][2]: holds \\ud83d at character 13, half of a UTF-16 surrogate pair" in message
    records[BAD]["passages"][1][2] = "fine"
    records[BAD]["feedback"]["errors"][0]["\udc00"] = 1
    message = refused(records)
    assert f"example {BAD + 1}, field feedback.errors[0]: a key holds \\udc00" in message


def test_it_refuses_nesting_deeper_than_the_limit(refused, records):
    records[BAD]["gold"] = "DEEP"
    message = refused(_with(records, "DEEP", "[" * 100_000 + "]" * 100_000))
    assert f"example {BAD + 1}, field gold[0][0][0]...: nested more than 64 levels deep" in message


def test_it_refuses_a_key_given_twice(refused, records):
    records[BAD]["feedback"]["errors"][1]["end"] = "MARK"
    message = refused(_with(records, "MARK", '12, "end": 14'))
    assert f"example {BAD + 1}, field feedback.errors[1].end: key 'end' appears twice in one object" in message


def test_it_refuses_more_passages_than_the_database_numbers(refused, records):
    records[BAD]["passages"] += [["title", "a sentence"]] * 32_765
    message = refused(records)
    assert f"example {BAD + 1}, field passages: holds 32768 entries; the database stores at most 32767" in message


def test_it_keeps_long_values_out_of_its_messages(refused, records):
    records[BAD]["feedback"]["errors"][0]["error type"] = "Typo" * 1_000_000
    message = refused(records)
    assert f"example {BAD + 1}, field feedback.errors[0].error type: 'TypoTypo" in message
    assert len(message) < 2_000


# --- streaming export ----------------------------------------------------------------------------------


class PieceRecorder:
    """A text file that notes, for each piece written, how many chunks the export had read by then."""

    def __init__(self, chunks_read):
        self.chunks_read = chunks_read
        self.pieces: list[tuple[int, str]] = []

    def writelines(self, pieces):
        assert not isinstance(pieces, (list, tuple, str)), "the export must hand over pieces as it makes them"
        for piece in pieces:
            self.pieces.append((len(self.chunks_read), piece))


@pytest.mark.django_db
def test_it_streams_an_export_piece_by_piece_while_it_reads_the_database(qa_feedback_dir, monkeypatch):
    from annotation.selectors import datasets as selectors

    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    chunks_read = []
    read_chunk = selectors._read_feedback_chunk
    monkeypatch.setattr(selectors, "FEEDBACK_CHUNK", 50)
    monkeypatch.setattr(selectors, "_read_feedback_chunk", lambda *a: chunks_read.append(1) or read_chunk(*a))
    out = PieceRecorder(chunks_read)

    summary = dataset_export(dataset="qa", split="dev", fmt="feedback", out=out)

    assert summary.examples == 500 and len(chunks_read) == 10
    assert len(out.pieces) == 501  # one per example, and the closing bracket
    # Each example goes out once its chunk of 50 has been read, and before the chunk after next is: on
    # PostgreSQL the next chunk is read while this one is written (selectors.read_ahead), never further.
    ahead = 1 if connection.vendor == "postgresql" else 0
    read_when_written = [chunks for chunks, _ in out.pieces[:500]]
    assert all(n // 50 + 1 <= read <= n // 50 + 1 + ahead for n, read in enumerate(read_when_written))
    assert read_when_written[0] < read_when_written[-1]
    assert "".join(piece for _, piece in out.pieces) == (qa_feedback_dir / "dev_feedback.json").read_text()


@pytest.mark.django_db
def test_a_read_that_fails_midway_leaves_no_file(qa_feedback_dir, tmp_path, monkeypatch):
    from annotation.selectors import datasets as selectors

    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    read_chunk, chunks_read = selectors._read_feedback_chunk, []

    def failing_chunk(*args):
        chunks_read.append(1)
        if len(chunks_read) == 4:
            raise RuntimeError("connection lost")
        return read_chunk(*args)

    monkeypatch.setattr(selectors, "FEEDBACK_CHUNK", 50)
    monkeypatch.setattr(selectors, "_read_feedback_chunk", failing_chunk)
    folder = tmp_path / "exports"
    folder.mkdir()
    with pytest.raises(RuntimeError, match="connection lost"):
        dataset_export(dataset="qa", split="dev", fmt="feedback", out=folder / "dev.json")
    assert list(folder.iterdir()) == []


@pytest.mark.django_db
def test_it_streams_the_inputs_format_too(qa_feedback_dir):
    dataset_import(path_or_file=qa_feedback_dir / "dev.json", dataset_name="qa", split="dev")
    out = PieceRecorder([])
    dataset_export(dataset="qa", split="dev", fmt="inputs", out=out)
    assert len(out.pieces) == 501
    assert "".join(piece for _, piece in out.pieces) == (qa_feedback_dir / "dev.json").read_text()


@pytest.mark.django_db
def test_it_refreshes_the_planner_statistics_once_a_postgresql_import_commits(
    qa_feedback_dir, django_capture_on_commit_callbacks
):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("ANALYZE is PostgreSQL's; SQLite plans without gathered statistics")

    def estimated_rows(table: str) -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
            return cursor.fetchone()[0]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    assert estimated_rows("annotation_response") < 2000  # never analysed: the planner would guess
    for callback in callbacks:
        callback()
    assert estimated_rows("annotation_response") == 2000
    assert estimated_rows("annotation_errorspan") == 1373
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'annotation_response' AND attname = 'example_id'")
        assert cursor.fetchone()[0] == 1


def test_it_names_a_long_or_broken_key_without_repeating_it_whole(refused, records):
    records[BAD]["k" * 100_000] = 1
    message = refused(records)
    assert f"example {BAD + 1}, field {'k' * 59}…: unexpected key" in message and len(message) < 2_000
    del records[BAD]["k" * 100_000]
    records[BAD]["feedback"]["errors"][0]["MARK"] = 1
    message = refused(_with(records, "MARK", '"\\ud800": 1, "\\ud800"'))
    assert f"example {BAD + 1}, field feedback.errors[0]: a key holds \\ud800" in message


def test_an_export_that_cannot_write_fails_and_leaves_no_file(qa_feedback_dir, tmp_path, monkeypatch, db):
    from annotation.qa import format as qa_format

    dataset_import(path_or_file=qa_feedback_dir / "dev.json", dataset_name="qa", split="dev")
    dump = qa_format.iter_dump

    def breaking_dump(records, *, fmt):
        for n, piece in enumerate(dump(records, fmt=fmt)):
            if n == 120:
                raise OSError(28, "No space left on device")
            yield piece

    monkeypatch.setattr(qa_format, "iter_dump", breaking_dump)
    folder = tmp_path / "exports"
    folder.mkdir()
    with pytest.raises(OSError, match="No space left"):
        dataset_export(dataset="qa", split="dev", fmt="inputs", out=folder / "dev.json")
    assert list(folder.iterdir()) == []  # not even the temporary file


@pytest.mark.django_db
def test_an_export_pauses_the_garbage_collector_and_puts_it_back(qa_feedback_dir):
    import gc

    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")

    class Recorder(io.StringIO):
        collecting: list[bool] = []

        def writelines(self, pieces):
            for piece in pieces:
                self.collecting.append(gc.isenabled())
                self.write(piece)

    frozen_before, out = gc.get_freeze_count(), Recorder()
    assert gc.isenabled()
    dataset_export(dataset="qa", split="dev", fmt="feedback", out=out)
    assert len(out.collecting) == 501 and not any(out.collecting)
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before
    assert out.getvalue() == (qa_feedback_dir / "dev_feedback.json").read_text()
