"""What the run page and the launch form say: resume or restart, cancel notes, samples, setting names and help."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template import Context, Template
from django.urls import reverse

from training import services, supervisor
from training.run_folder import run_output_path
from training.models import RunSample, RunStatus, TrainingRun
from tests.training.run_fixtures import token_rm_file  # noqa: F401

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _running(token_rm_file, kind="rm_relevance") -> TrainingRun:
    upload = SimpleUploadedFile("train.json", token_rm_file.read_bytes())
    run = services.run_create(kind=kind, preset="tiny", uploads={"train": upload}, overrides={})
    return supervisor.run_claim(run_id=run.pk, host="node-a")


def _checkpoint(run, *, step=40, name="last"):
    (run_output_path(run) / "checkpoints" / name).mkdir(parents=True)
    supervisor.run_record_event(run=run, event={"event": "artifact", "kind": "checkpoint", "name": name,
                                              "path": f"checkpoints/{name}", "meta": {"step": step}})


def _page(client, run, **extra) -> str:
    return client.get(reverse("training:run_detail", args=[run.pk]), **extra).content.decode()


def _messages(page: str) -> list[str]:
    return re.findall(r'<li class="message message-\w+">(.*?)</li>', page)


def test_a_run_without_a_checkpoint_offers_a_restart_not_a_resume(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    supervisor.run_finish(run=run, status=RunStatus.CANCELLED, error="Cancelled by a user.")
    page = _page(researcher_client, run)
    assert "Restart from the first step" in page and "Resume" not in page
    assert "saved no checkpoint" in page

    response = researcher_client.post(reverse("training:run_resume", args=[run.pk]), follow=True)
    again = TrainingRun.objects.get(resumed_from=run)
    page = response.content.decode()
    assert _messages(page) == [f"Run #{again.pk} restarts run #{run.pk} from the first step: run #{run.pk} saved no checkpoint."]
    assert "Restarts" in page and "from the first step (it saved no checkpoint)" in page and "Continues" not in page
    assert supervisor.run_resume_checkpoint(run=again) is None


def test_a_run_with_a_checkpoint_resumes_from_its_step(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    _checkpoint(run, step=40)
    supervisor.run_finish(run=run, status=RunStatus.FAILED, error="The trainer was killed by SIGKILL.")
    page = _page(researcher_client, run)
    assert "Resume from step 40" in page and "Restart" not in page

    response = researcher_client.post(reverse("training:run_resume", args=[run.pk]), follow=True)
    again = TrainingRun.objects.get(resumed_from=run)
    page = response.content.decode()
    assert _messages(page) == [f"Run #{again.pk} continues run #{run.pk} from its checkpoint at step 40."]
    assert f'run #{run.pk}</a> from its checkpoint at step 40.' in page


def test_a_checkpoint_whose_folder_is_gone_is_not_offered(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    _checkpoint(run)
    (run_output_path(run) / "checkpoints" / "last").rmdir()
    supervisor.run_finish(run=run, status=RunStatus.FAILED, error="boom")
    assert "Restart from the first step" in _page(researcher_client, run)


def test_cancel_asks_first_and_leaves_no_message_that_outlives_the_state(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    page = _page(researcher_client, run)
    assert f'data-confirm-submit="Stop run #{run.pk}?' in page

    response = researcher_client.post(reverse("training:run_cancel", args=[run.pk]), follow=True)
    page = response.content.decode()
    assert _messages(page) == []  # "will stop within a few seconds" would stay after it stopped
    assert "Cancel requested: the worker stops the trainer within a few seconds." in page
    assert "Stopping…" in page

    supervisor.run_finish(run=run, status=RunStatus.CANCELLED, error="Cancelled by a user.")
    final = _page(researcher_client, run, **HTMX)
    assert "Cancel requested" not in final and "Stopping" not in final
    # A deliberate cancel is a state, not an error: no red alert box.
    assert 'class="run-note run-note-cancelled" id="run-note">Cancelled by a user.' in final
    assert "message-error" not in final and 'role="alert"' not in final


def test_a_failure_is_still_shown_as_an_error(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    supervisor.run_finish(run=run, status=RunStatus.FAILED, error="CUDA out of memory.")
    page = _page(researcher_client, run)
    assert '<div class="message message-error" role="alert" id="run-error"><strong>CUDA out of memory.</strong>' in page


def test_a_launch_says_queued_only_while_the_run_is_queued(researcher_client, token_rm_file):
    response = researcher_client.post(
        reverse("training:run_launch"),
        {"kind": "rm_relevance", "preset": "tiny", "train_split": "", "eval_split": "",
         "train_file": SimpleUploadedFile("train.json", token_rm_file.read_bytes())},
        follow=True,
    )
    run = TrainingRun.objects.get()
    page = response.content.decode()
    assert _messages(page) == []  # a flash "is queued" would stay on the page once the run runs
    assert "Queued: it starts when a training worker is free." in page
    supervisor.run_claim(run_id=run.pk, host="node-a")
    assert "Queued:" not in _page(researcher_client, run, **HTMX)


def test_the_samples_of_an_sft_run_say_nothing_about_rewards(researcher_client, token_rm_file):
    run = _running(token_rm_file, kind="sft")
    supervisor.run_record_event(run=run, event={"event": "sample", "step": 4, "prompt": "question: who?", "text": "Him.",
                                              "segments": [{"text": "Him.", "reward": None, "label": ""}], "total_reward": None})
    page = _page(researcher_client, run)
    samples = page[page.index('id="samples"'):page.index("<h2>Log</h2>")]
    assert "Him." in samples and "reward" not in samples.lower()
    assert "greedy answers on dev at the latest evaluation" in samples  # the kind's caption (training/kinds.py)


def test_the_samples_of_a_ppo_run_show_their_rewards(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    RunSample.objects.create(run=run, step=1, prompt="q", text="Him. Not her.", total_reward=-0.3, segments=[
        {"text": "Him.", "reward": 0.3, "label": "O"}, {"text": " Not her.", "reward": -0.6, "label": "NF-ERR"}])
    page = _page(researcher_client, run)
    assert "coloured by its reward" in page and "<th>Total reward</th>" in page and 'title="NF-ERR -0.600"' in page


def test_setting_names_wrap_only_after_underscores_and_help_shows_code(researcher_client):
    page = researcher_client.get(reverse("training:run_launch") + "?kind=rm_relevance&preset=tiny").content.decode()
    assert '<code class="setting-name">eval_<wbr>batch_<wbr>size</code>' in page
    assert "<code>{tiny_encoder}</code> = build a tiny one" in page
    help_cells = re.findall(r'<td class="small setting-help">(.*?)</td>', page, flags=re.S)
    assert help_cells and not any("`" in cell for cell in help_cells)


def test_the_filters_escape_what_they_mark_up():
    rendered = Template("{% load training_extras %}{{ name|break_at_underscores }}|{{ help|inline_code }}").render(
        Context({"name": "a_<b>", "help": "use `<x>` or `y_z`, not <b>"}))
    assert rendered == "a_<wbr>&lt;b&gt;|use <code>&lt;x&gt;</code> or <code>y_z</code>, not &lt;b&gt;"
