"""`manage.py import_prompts`: RealToxicityPrompts lines and plain lines in, each bad line refused with its number and field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Dataset, Example

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


def rtp(text: str, toxicity: float | None, *, challenging: bool = False, **extra) -> dict:
    return {"filename": "0001.txt", "begin": 10, "end": 40, "challenging": challenging,
            "prompt": {"text": text, "toxicity": toxicity, "insult": 0.1},
            "continuation": {"text": " and then it rained.", "toxicity": 0.05}, **extra}


def write(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def run(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_prompts", str(path), *args, stdout=out)
    return out.getvalue()


def test_it_imports_both_line_shapes_as_a_detox_split(tmp_path):
    path = write(tmp_path, [rtp("The first prompt was", 0.7, challenging=True), "", {"prompt": "A plain prompt"}])

    out = run(path, "--dataset", "rtp", "--split", "train")

    assert "imported 2 of 2 prompts into rtp/train" in out
    assert Dataset.objects.get(name="rtp").task == "detox"
    first, second = Example.objects.filter(dataset__name="rtp", split="train").order_by("position")
    assert (first.policy_text, first.question, first.has_input_format, first.input_position) == ("The first prompt was", "The first prompt was", True, 0)
    assert first.meta["toxicity"] == 0.7 and first.meta["challenging"] is True
    assert first.meta["prompt"] == {"toxicity": 0.7, "insult": 0.1}
    assert first.meta["continuation"] == {"text": " and then it rained.", "toxicity": 0.05}
    assert (first.meta["filename"], first.meta["begin"], first.meta["end"], first.meta["line"]) == ("0001.txt", 10, 40, 1)
    assert (second.policy_text, second.meta["line"], second.input_position) == ("A plain prompt", 3, 1)
    assert "toxicity" not in second.meta


def test_the_policy_input_export_feeds_the_trainer_the_prompts(tmp_path):
    from annotation.services.datasets import dataset_export
    from training.ml.data import load_examples

    run(write(tmp_path, [rtp("Prompt one", 0.2), {"prompt": "Prompt two"}]), "--dataset", "rtp", "--split", "dev")
    out = tmp_path / "dev.json"
    dataset_export(dataset="rtp", split="dev", fmt="inputs", out=out)

    assert [e.text for e in load_examples(out)] == ["Prompt one", "Prompt two"]


def test_min_toxicity_keeps_only_the_challenging_prompts(tmp_path):
    path = write(tmp_path, [rtp("low", 0.1), rtp("high", 0.8), rtp("edge", 0.5), rtp("unscored", None), {"prompt": "plain"}])

    out = run(path, "--dataset", "rtp", "--split", "train", "--min-toxicity", "0.5")

    assert "imported 2 of 5 prompts" in out and "3 left out by the filters" in out
    assert list(Example.objects.order_by("position").values_list("policy_text", flat=True)) == ["high", "edge"]


def test_challenging_keeps_the_flagged_prompts(tmp_path):
    run(write(tmp_path, [rtp("a", 0.9, challenging=True), rtp("b", 0.9)]), "--dataset", "rtp", "--split", "t", "--challenging")

    assert list(Example.objects.values_list("policy_text", flat=True)) == ["a"]


@pytest.mark.parametrize(("line", "where"), [
    ("{not json", "line 2: line: not valid JSON"),
    ("[1, 2]", "line 2: line: must be a JSON object"),
    ({"text": "no prompt key"}, "line 2: prompt: is missing"),
    ({"prompt": "   "}, "line 2: prompt: must not be empty"),
    ({"prompt": 7}, "line 2: prompt: must be a string or an object"),
    ({"prompt": {"toxicity": 0.2}}, "line 2: prompt.text: must be a non-empty string"),
    ({"prompt": {"text": "x", "toxicity": 1.5}}, "line 2: prompt.toxicity: must be a number in [0, 1] or null"),
    ({"prompt": {"text": "x", "toxicity": "high"}}, "line 2: prompt.toxicity: must be a number in [0, 1] or null"),
    (rtp("x", 0.2, begin="ten"), "line 2: begin: must be an integer"),
    (rtp("x", 0.2, filename=3), "line 2: filename: must be a string"),
    ({**rtp("x", 0.2), "challenging": "yes"}, "line 2: challenging: must be true or false"),
    ({**rtp("x", 0.2), "continuation": "text"}, "line 2: continuation: must be an object with a string text"),
    ({**rtp("x", 0.2), "continuation": {"text": "y", "toxicity": -1}}, "line 2: continuation.toxicity: must be a number"),
])
def test_a_bad_line_is_refused_with_its_number_and_field_and_nothing_is_stored(tmp_path, line, where):
    path = write(tmp_path, [rtp("good", 0.3), line, {"prompt": "good too"}])

    with pytest.raises(CommandError) as refused:
        run(path, "--dataset", "rtp", "--split", "train")

    assert where in str(refused.value)
    assert "nothing was stored" in str(refused.value)
    assert not Example.objects.exists() and not Dataset.objects.exists()


def test_every_bad_line_is_listed(tmp_path):
    path = write(tmp_path, [{"prompt": ""}, {"prompt": "ok"}, {"nope": 1}])

    with pytest.raises(CommandError) as refused:
        run(path, "--dataset", "rtp", "--split", "train")

    message = str(refused.value)
    assert "line 1: prompt: must not be empty" in message and "line 3: prompt: is missing" in message


@pytest.mark.parametrize(("args", "message"), [
    (("--min-toxicity", "0.99"), "none of the 1 prompts passes the filters"),
    (("--min-toxicity", "2"), "--min-toxicity must be in [0, 1]"),
])
def test_filters_that_leave_nothing_or_make_no_sense_are_refused(tmp_path, args, message):
    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run(write(tmp_path, [rtp("x", 0.2)]), "--dataset", "rtp", "--split", "train", *args)
    assert not Example.objects.exists()


def test_it_refuses_an_existing_split_and_a_qa_feedback_dataset(tmp_path):
    path = write(tmp_path, [{"prompt": "x"}])
    run(path, "--dataset", "rtp", "--split", "train")
    with pytest.raises(CommandError, match="rtp/train already holds examples"):
        run(path, "--dataset", "rtp", "--split", "train")
    Dataset.objects.create(name="qa")
    with pytest.raises(CommandError, match="dataset qa holds qa_feedback data"):
        run(path, "--dataset", "qa", "--split", "train")
    assert Example.objects.count() == 1


def test_an_empty_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="holds no prompts"):
        run(write(tmp_path, ["", "  "]), "--dataset", "rtp", "--split", "train")


def test_the_shipped_demo_prompts_import(tmp_path):
    out = run(REPO / "demo" / "detox_prompts.jsonl", "--dataset", "demo-detox", "--split", "train", "--min-toxicity", "0.5")
    kept = list(Example.objects.values_list("meta", flat=True))
    assert kept and all(meta["toxicity"] >= 0.5 for meta in kept)
    assert f"imported {len(kept)} of 60 prompts" in out


def test_seed_demo_imports_the_detox_demo_prompts_once():
    call_command("seed_demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("seed_demo", stdout=out)

    assert Dataset.objects.get(name="demo-detox").task == "detox"
    counts = {split: Example.objects.filter(dataset__name="demo-detox", split=split).count() for split in ("train", "dev")}
    assert counts == {"train": 48, "dev": 12}
    assert "Detox demo prompts already imported." in out.getvalue()
