"""Several annotators per item, the data side: attributed import and export, aggregation rules, the
disagreement-preserving export, the agreement command and selectors."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from annotation.models import (
    Adjudication,
    AssignmentKind,
    Campaign,
    Comparison,
    Dataset,
    ErrorSpan,
    Example,
    FineGrainedFeedback,
    MissingInfo,
    Response,
)
from annotation.qa import agreement as qa_agreement
from annotation.qa.agreement import item_agreement, spans_of
from annotation.qa.spans import word_spans
from annotation.qa.vocab import IRRELEVANT, NF_ERR, NF_ERR_SUBSENTENCE, REDUNDANT
from annotation.selectors.agreement import (
    campaign_agreement,
    campaign_item_disagreement,
    dataset_agreement,
    item_disagreement,
    split_items,
)
from tests.annotation.annotators_data import feedback_text, variant

ANNOTATORS = ("ana", "ben", "cleo")


def run(name: str, *args, **options) -> str:
    stdout = io.StringIO()
    call_command(name, *args, stdout=stdout, stderr=io.StringIO(), **options)
    return stdout.getvalue()


def import_as(path, annotator, dataset="team", split="dev") -> str:
    return run("import_qa_feedback", str(path), dataset=dataset, split=split, annotator=annotator)


def export(out, **options) -> str:
    return run("export_qa_feedback", dataset="team", split="dev", out=str(out), **options)


@pytest.fixture(scope="module")
def dev_records(qa_feedback_dir) -> list[dict]:
    return json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))


def write(tmp_path, name: str, records: list[dict]):
    path = tmp_path / f"{name}.json"
    path.write_text(feedback_text(records), encoding="utf-8")
    return path


@pytest.fixture
def three_files(tmp_path, dev_records):
    """First 30 shared examples: ana's as shared, ben's and cleo's varied; all three imported."""
    records = dev_records[:30]
    files = {
        "ana": write(tmp_path, "ana", records),
        "ben": write(tmp_path, "ben", variant(records, 1)),
        "cleo": write(tmp_path, "cleo", variant(records, 2)),
    }
    for name, path in files.items():
        import_as(path, name)
    return files


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Example, Response, FineGrainedFeedback, ErrorSpan, MissingInfo, Comparison)
    }


# --- attributed import and export --------------------------------------------------------------------


@pytest.mark.django_db
def test_three_annotators_files_come_back_byte_for_byte(qa_feedback_dir, tmp_path, dev_records):
    shared = qa_feedback_dir / "dev_feedback.json"
    files = {"ana": shared, "ben": write(tmp_path, "ben", variant(dev_records, 1))}
    files["cleo"] = write(tmp_path, "cleo", variant(dev_records, 2))
    printed = [import_as(path, name) for name, path in files.items()]
    assert "500 new" in printed[0] and "as ana's annotations" in printed[0]
    assert "attached to 500 existing examples" in printed[1] and "as ben's annotations" in printed[1]
    assert Example.objects.count() == 500 and Response.objects.count() == 2000
    assert FineGrainedFeedback.objects.count() == Comparison.objects.count() == 1500
    for name, path in files.items():
        out = tmp_path / f"out-{name}.json"
        assert f"{name}'s annotations" in export(out, annotator=name)
        assert out.read_bytes() == path.read_bytes(), name
    # The variants differ from the shared file, so each export really is that annotator's own work.
    assert files["ben"].read_bytes() != shared.read_bytes() != files["cleo"].read_bytes()


@pytest.mark.django_db
def test_an_attributed_import_creates_an_annotator_without_a_usable_password(three_files):
    users = get_user_model().objects.filter(username__in=ANNOTATORS)
    assert users.count() == 3
    assert not any(user.has_usable_password() for user in users)
    assert not get_user_model().objects.filter(username__startswith="import@").exists()
    for user in users:
        assert FineGrainedFeedback.objects.filter(annotator=user, status="submitted").count() == 30


@pytest.mark.django_db
def test_mismatched_predictions_are_refused_naming_the_example_and_nothing_is_stored(tmp_path, dev_records):
    import_as(write(tmp_path, "ana", dev_records[:30]), "ana")
    before = counts()
    records = variant(dev_records[:30], 1)
    records[6]["prediction 3"] = records[6]["prediction 3"] + " Changed."
    with pytest.raises(CommandError) as caught:
        import_as(write(tmp_path, "ben", records), "ben")
    message = str(caught.value)
    assert "nothing was written" in message
    assert "example 7, field prediction 3: differs from prediction 3 of example 7 of team/dev" in message
    assert counts() == before
    assert not get_user_model().objects.filter(username="ben").exists()
    records = variant(dev_records[:30], 1)
    records[11]["gold"] = "Another gold answer."
    with pytest.raises(CommandError, match=r"example 12, field gold: differs from the gold answer of example 12"):
        import_as(write(tmp_path, "ben", records), "ben")
    assert counts() == before


@pytest.mark.django_db
def test_a_later_file_attaches_by_question_whatever_its_order(tmp_path, dev_records):
    import_as(write(tmp_path, "ana", dev_records[:10]), "ana")
    reordered = list(reversed(variant(dev_records[:10], 1)))[:6]  # part of the split, in another order
    assert "attached to 6 existing examples" in import_as(write(tmp_path, "ben", reordered), "ben")
    for record in reordered:
        feedback = FineGrainedFeedback.objects.get(annotator__username="ben", response__example__question=record["question"])
        assert feedback.corrected_prediction == record["feedback"]["corrected-prediction"]
        assert list(feedback.errors.values_list("start", "end", "error_type")) == [
            (e["start"], e["end"], e["error type"]) for e in record["feedback"]["errors"]
        ]


@pytest.mark.django_db
def test_an_unknown_question_and_a_second_file_of_one_annotator_are_refused(tmp_path, dev_records):
    import_as(write(tmp_path, "ana", dev_records[:10]), "ana")
    before = counts()
    records = json.loads(json.dumps(dev_records[:10]))
    records[3]["question"] = "Who wrote this test?"
    with pytest.raises(CommandError, match=r"example 4, field question: no example of team/dev has this question"):
        import_as(write(tmp_path, "ben", records), "ben")
    with pytest.raises(CommandError, match=r"ana already has annotations on 10 examples of team/dev"):
        import_as(write(tmp_path, "again", dev_records[:10]), "ana")
    assert counts() == before


@pytest.mark.django_db
def test_an_inputs_file_or_a_bad_name_cannot_be_attributed(qa_feedback_dir, tmp_path, dev_records):
    with pytest.raises(CommandError, match="--annotator applies to feedback-format files"):
        import_as(qa_feedback_dir / "dev.json", "ana")
    with pytest.raises(CommandError, match="is not a valid username"):
        import_as(write(tmp_path, "x", dev_records[:2]), "no spaces allowed")
    with pytest.raises(CommandError, match="belong to the import accounts"):
        import_as(write(tmp_path, "x", dev_records[:2]), "import@team")
    assert not Dataset.objects.exists() and not get_user_model().objects.exists()


@pytest.mark.django_db
def test_an_unknown_annotator_has_nothing_to_export(three_files, tmp_path):
    with pytest.raises(CommandError, match="no annotator named 'dora'"):
        export(tmp_path / "x.json", annotator="dora")
    with pytest.raises(CommandError, match="an annotator's export is in the feedback format"):
        export(tmp_path / "x.json", annotator="ana", aggregate="majority")


# --- aggregation rules ---------------------------------------------------------------------------


def with_feedback(record: dict, errors: list[tuple[int, int, str]], preference: list[int], corrected: str) -> dict:
    record = json.loads(json.dumps(record))
    record["feedback"]["errors"] = [
        {"error type": t, "explanation": "", "start": s, "end": e} for s, e, t in errors
    ]
    record["feedback"]["corrected-prediction"] = corrected
    record["preference"] = preference
    return record


@pytest.fixture
def crafted(tmp_path, dev_records):
    """Three annotators disagreeing on the first example in known ways; the next two left as shared."""
    records = dev_records[:3]
    words = word_spans(records[0]["prediction 1"])

    def span(first: int, last: int, error_type: str) -> tuple[int, int, str]:
        return (words[first][0], words[last][1], error_type)

    crafted_first = {
        # Irrelevant on words 0-1, 1-2 and Redundant on 5: only word 1 has a majority (2 of 3).
        "ana": with_feedback(records[0], [span(0, 1, IRRELEVANT)], [1, 1, 1, 1, 1, 1], "ana's fix"),
        "ben": with_feedback(records[0], [span(1, 2, IRRELEVANT)], [2, 2, 2, 1, 1, 1], "ben's fix"),
        "cleo": with_feedback(records[0], [span(5, 5, REDUNDANT)], [0, 2, 2, 0, 1, 1], "cleo's fix"),
    }
    for name, first in crafted_first.items():
        import_as(write(tmp_path, name, [first, *records[1:]]), name)
    return {"records": records, "first": crafted_first, "span": span}


@pytest.mark.django_db
def test_majority_takes_words_most_annotators_marked_and_the_closest_annotators_answers(crafted, tmp_path):
    out = tmp_path / "majority.json"
    printed = export(out, aggregate="majority")
    assert "rule majority; left out: none" in printed
    first, *rest = json.loads(out.read_text())
    assert [(e["start"], e["end"], e["error type"]) for e in first["feedback"]["errors"]] == [
        crafted["span"](1, 1, IRRELEVANT)
    ]
    # Per pair, the value two of three gave, else 0: (1,2,0)->0, (1,2,2)->2, (1,2,2)->2, (1,1,0)->1, 1, 1.
    assert first["preference"] == [0, 2, 2, 1, 1, 1]
    # Distances to the majority: ana 1 word + 3 pairs, ben 1 word + 1 pair, cleo 2 words + 1 pair.
    assert first["feedback"]["corrected-prediction"] == "ben's fix"
    assert first["feedback"]["missing-info"] == crafted["first"]["ben"]["feedback"]["missing-info"]
    # Where all three agree, the majority is what they gave (spans in text order).
    for record in crafted["records"][1:]:
        record = json.loads(json.dumps(record))
        record["feedback"]["errors"].sort(key=lambda e: e["start"])
        assert rest.pop(0) == record


@pytest.mark.django_db
def test_adjudicated_exports_the_gold_version_and_counts_the_rest_left_out(crafted, tmp_path, make_user):
    example = Example.objects.get(dataset__name="team", position=1)
    gold_span = crafted["span"](0, 3, IRRELEVANT)
    reviewer = make_user("rita")
    now = timezone.now()
    gold_errors = [{"error type": IRRELEVANT, "explanation": "", "start": 0, "end": len(example.responses.get(number=1).text)}]
    Adjudication.objects.create(
        example=example,
        kind=AssignmentKind.FINE_GRAINED,
        errors=gold_errors,
        missing_info=[],
        corrected_prediction="the gold correction",
        adjudicated_by=reviewer,
        adjudicated_at=now,
    )
    Adjudication.objects.create(
        example=example, kind=AssignmentKind.COMPARISON, preference=[2, 2, 2, 2, 2, 2], adjudicated_by=reviewer, adjudicated_at=now
    )
    # A fine-grained gold version alone is not a whole record: that example is left out too.
    Adjudication.objects.create(
        example=Example.objects.get(dataset__name="team", position=0),
        kind=AssignmentKind.FINE_GRAINED,
        errors=[{"error type": IRRELEVANT, "explanation": "", "start": gold_span[0], "end": gold_span[1]}],
        adjudicated_by=reviewer,
        adjudicated_at=now,
    )
    out = tmp_path / "gold.json"
    printed = export(out, aggregate="adjudicated")
    assert "1 examples (feedback format) of team/dev, rule adjudicated" in printed
    assert "left out: 2 without a gold version of both kinds" in printed
    (record,) = json.loads(out.read_text())
    assert record["question"] == example.question
    assert record["feedback"] == {"errors": gold_errors, "missing-info": [], "corrected-prediction": "the gold correction"}
    assert record["preference"] == [2, 2, 2, 2, 2, 2]

    # build_rm_data under the same rule: the one gold example, its whole answer one irrelevant span.
    built = run("build_rm_data", dataset="team", split="dev", out=str(tmp_path / "rm"), splitter="sentencizer", aggregate="adjudicated")
    assert "Built from 1 of 3 examples" in built
    assert "Left out by the adjudicated rule: 2 without a gold version of both kinds" in built
    summary = json.loads((tmp_path / "rm" / "summary" / "dev.json").read_text())
    assert summary["aggregate"] == "adjudicated" and summary["left_out_by_rule"] == {
        "without a gold version of both kinds (fine-grained and comparison)": 2
    }
    (line,) = (tmp_path / "rm" / NF_ERR_SUBSENTENCE / "dev.json").read_text().splitlines()
    tags = [t for t in json.loads(line)["feedback_tags"] if t != "Ignore"]
    assert tags and set(tags) == {NF_ERR}


@pytest.mark.django_db
def test_build_rm_data_with_majority_uses_the_majority_record(crafted, tmp_path):
    export(tmp_path / "majority.json", aggregate="majority")
    # The reference: today's build (latest) over a split whose only annotations are the majority file.
    dataset_import_path = tmp_path / "majority.json"
    run("import_qa_feedback", str(dataset_import_path), dataset="reference", split="dev")
    run("build_rm_data", dataset="reference", split="dev", out=str(tmp_path / "ref"), splitter="sentencizer")
    printed = run("build_rm_data", dataset="team", split="dev", out=str(tmp_path / "maj"), splitter="sentencizer", aggregate="majority")
    assert "Left out by the majority rule: none" in printed
    for name in (NF_ERR_SUBSENTENCE, "F-ERR_sentence", "COMP_sequence"):
        assert (tmp_path / "maj" / name / "dev.json").read_bytes() == (tmp_path / "ref" / name / "dev.json").read_bytes()
    latest = run("build_rm_data", dataset="team", split="dev", out=str(tmp_path / "latest"), splitter="sentencizer")
    assert "most recently submitted" in latest


@pytest.mark.django_db
def test_latest_is_todays_rule_and_says_what_it_left_out(three_files, tmp_path):
    Comparison.objects.filter(example__position__in=[0, 1]).delete()
    printed = export(tmp_path / "latest.json")
    assert "28 examples (feedback format) of team/dev, rule latest" in printed
    assert "left out: 2 without a submitted fine-grained feedback and a submitted comparison" in printed


# --- the disagreement-preserving export ----------------------------------------------------------


@pytest.mark.django_db
def test_the_disagreement_export_keeps_every_annotators_work(three_files, tmp_path):
    out = tmp_path / "team.jsonl"
    assert "90 lines for 30 examples (disagreement format) of team/dev, rule majority" in export(out, fmt="disagreement")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    files = {name: json.loads(path.read_text()) for name, path in three_files.items()}
    assert [(line["example"], line["annotator"]) for line in lines[:3]] == [(1, "ana"), (1, "ben"), (1, "cleo")]
    for line in lines:
        record = files[line["annotator"]][line["example"] - 1]
        assert line["question"] == record["question"] and line["prediction 1"] == record["prediction 1"]
        assert line["feedback"] == record["feedback"] and line["preference"] == record["preference"]
        item = {
            name: {"prediction": record["prediction 1"], "errors": spans_of(f[line["example"] - 1]["feedback"]["errors"]),
                   "preference": f[line["example"] - 1]["preference"]}
            for name, f in files.items()
        }
        assert line["agreement"] == item_agreement(item)
        annotations = {
            name: {"feedback": f[line["example"] - 1]["feedback"], "preference": f[line["example"] - 1]["preference"]}
            for name, f in files.items()
        }
        expected = qa_agreement.majority(record["prediction 1"], annotations)
        assert line["aggregated"] == {"rule": "majority", "feedback": expected["feedback"], "preference": expected["preference"]}


# --- agreement: command and selectors --------------------------------------------------------------


def items_from_files(files: dict, only: set[str] | None = None) -> list[dict]:
    parsed = {name: json.loads(path.read_text()) for name, path in files.items() if only is None or name in only}
    count = len(next(iter(parsed.values())))
    return [
        {
            name: {
                "prediction": records[i]["prediction 1"],
                "errors": spans_of(records[i]["feedback"]["errors"]),
                "preference": records[i]["preference"],
            }
            for name, records in parsed.items()
        }
        for i in range(count)
    ]


@pytest.mark.django_db
def test_the_agreement_command_reads_what_the_files_say(three_files):
    figures = json.loads(run("agreement", dataset="team", split="dev", as_json=True))
    expected = qa_agreement.agreement(items_from_files(three_files))
    assert figures["items"] == 30 and figures["annotators"] == list(ANNOTATORS)
    assert figures == expected
    assert 0 < figures["preference"]["alpha"] < 1 and 0 < figures["errors"]["alpha"] < 1
    text = run("agreement", dataset="team", split="dev")
    assert "team/dev: 30 examples with two or more annotators (ana, ben, cleo)" in text
    assert f"preference alpha:   {figures['preference']['alpha']:.3f}" in text


@pytest.mark.django_db
def test_the_agreement_command_ignores_examples_with_one_annotator_and_shows_undefined(tmp_path, dev_records):
    import_as(write(tmp_path, "ana", dev_records[:4]), "ana")
    import_as(write(tmp_path, "ben", dev_records[:2]), "ben")  # ben agrees with ana on the first two
    figures = json.loads(run("agreement", dataset="team", split="dev", as_json=True))
    assert figures["items"] == 2
    assert figures["errors"]["span_f1_exact"] == 1.0
    types_used = {e["error type"] for r in dev_records[:2] for e in r["feedback"]["errors"]}
    for error_type, value in figures["errors"]["per_type"].items():
        assert (value is None) == (error_type not in types_used), error_type
    assert "undefined (no variation)" in run("agreement", dataset="team", split="dev")
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        run("agreement", dataset="nope", split="dev")
    with pytest.raises(CommandError, match="team has no split 'test'"):
        run("agreement", dataset="team", split="test")


@pytest.mark.django_db
def test_campaign_agreement_keeps_to_its_annotators(three_files):
    campaign = Campaign.objects.create(name="c", dataset=Dataset.objects.get(name="team"), split="dev")
    campaign.annotators.set(get_user_model().objects.filter(username__in=["ana", "cleo"]))
    figures = campaign_agreement(campaign=campaign)
    expected = qa_agreement.agreement(items_from_files(three_files, only={"ana", "cleo"}))
    assert figures["annotators"] == ["ana", "cleo"]
    assert {k: figures[k] for k in expected} == expected
    assert set(figures["per_annotator"]) == {"ana", "cleo"}
    assert figures["per_annotator"]["ana"]["others"]["cleo"]["preference_alpha"] == pytest.approx(
        figures["preference"]["alpha"]
    )
    assert dataset_agreement(dataset="team", split="dev")["annotators"] == list(ANNOTATORS)


@pytest.mark.django_db
def test_items_are_queued_most_disagreement_first(three_files):
    queue = item_disagreement(dataset="team", split="dev")
    scores = [row.figures["disagreement"] for row in queue]
    assert len(queue) == 30 and scores == sorted(scores, reverse=True)
    first = queue[0]
    assert first.figures == item_agreement(items_from_files(three_files)[first.number - 1])
    campaign = Campaign.objects.create(name="c", dataset=Dataset.objects.get(name="team"), split="dev")
    campaign.annotators.set(get_user_model().objects.filter(username__in=["ana", "ben"]))
    assert all(row.figures["annotators"] == ["ana", "ben"] for row in campaign_item_disagreement(campaign=campaign))


@pytest.mark.django_db
def test_reading_a_split_for_agreement_takes_four_queries_whatever_its_size(three_files, django_assert_num_queries):
    with django_assert_num_queries(5):  # the dataset by name, then four reads
        rows = split_items(dataset="team", split="dev")
    assert len(rows) == 30 and all(len(row.item) == 3 for row in rows)


# --- the dataset page's export -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dataset_page_exports_every_annotators_work_in_the_background(
    three_files, researcher_client, eager_celery, django_capture_on_commit_callbacks, tmp_path
):
    from django.urls import reverse

    from annotation.models import DatasetJob

    url = reverse("annotation:dataset_export", args=["team", "dev", "disagreement"])
    assert url in researcher_client.get(reverse("annotation:dataset_detail", args=["team"])).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        researcher_client.post(url)
    job = DatasetJob.objects.get()
    assert (job.status, job.fmt, job.filename) == ("succeeded", "disagreement", "team-dev_disagreement.jsonl"), job.error
    assert "Exported 90 lines for 30 examples (disagreement format) of team/dev, rule majority" in job.result
    assert job.examples == 30  # the job list counts examples, not lines
    download = researcher_client.get(reverse("annotation:dataset_job_download", args=[job.pk]))
    assert download["Content-Type"] == "application/jsonl"
    export(tmp_path / "same.jsonl", fmt="disagreement")
    assert b"".join(download.streaming_content) == (tmp_path / "same.jsonl").read_bytes()


@pytest.mark.django_db
def test_one_example_reads_with_every_annotators_work_and_its_gold_version(three_files, make_user, django_assert_num_queries):
    from annotation.selectors.aggregate import annotated_example

    example = Example.objects.get(dataset__name="team", position=4)
    Adjudication.objects.create(
        example=example, kind=AssignmentKind.COMPARISON, preference=[1, 1, 1, 1, 1, 1], adjudicated_at=timezone.now()
    )
    files = {name: json.loads(path.read_text())[4] for name, path in three_files.items()}
    with django_assert_num_queries(8):  # the example, passages, answers, feedback, spans, missing-info, comparisons, gold
        found = annotated_example(example_id=example.pk, annotators=["ben", "cleo"])
    assert found.number == 5 and found.question == files["ana"]["question"]
    assert found.predictions == [files["ana"][f"prediction {n}"] for n in (1, 2, 3, 4)]
    assert {name: (a["feedback"], a["preference"]) for name, a in found.annotations.items()} == {
        name: (files[name]["feedback"], files[name]["preference"]) for name in ("ben", "cleo")
    }
    assert found.adjudication == {"feedback": None, "preference": [1, 1, 1, 1, 1, 1]}
    assert annotated_example(example_id=0) is None


@pytest.mark.django_db
def test_the_rm_files_page_builds_under_the_chosen_rule(crafted, researcher_client, eager_celery, django_capture_on_commit_callbacks):
    from django.urls import reverse

    from annotation.models import RmDataBuild

    page = researcher_client.get(reverse("annotation:rm_data")).content.decode()
    assert 'name="aggregate"' in page and "Majority of the annotators" in page
    data = {"dataset": "team", "split": "dev", "splitter": "sentencizer"}
    refused = researcher_client.post(reverse("annotation:rm_data"), {**data, "aggregate": "adjudicated"})
    assert refused.status_code == 400 and "team/dev has no gold version (adjudication) yet" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        researcher_client.post(reverse("annotation:rm_data"), {**data, "aggregate": "majority"})
    build = RmDataBuild.objects.get()
    assert (build.status, build.aggregate, build.summary["aggregate"]) == ("succeeded", "majority", "majority"), build.error
    assert build.summary["examples"] == 3
    assert "3 examples; rule majority" in researcher_client.get(reverse("annotation:rm_data")).content.decode()
