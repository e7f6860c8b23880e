"""The training dashboard: runs list, launch form, live run page, and who may see them."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from annotation.models import Dataset, Example
from training import services, supervisor
from training.models import RunMetric, RunStatus, TrainingRun
from tests.training.run_fixtures import TOKEN_LINE, token_rm_file  # noqa: F401

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _run(token_rm_file, **overrides) -> TrainingRun:
    upload = SimpleUploadedFile("train.json", token_rm_file.read_bytes())
    return services.run_create(kind="rm_relevance", preset="tiny", uploads={"train": upload}, overrides=overrides)


def _running(token_rm_file) -> TrainingRun:
    run = _run(token_rm_file)
    return supervisor.run_claim(run_id=run.pk, host="node-a")


def test_it_refuses_annotators_everywhere(annotator_client, token_rm_file):
    run = _run(token_rm_file)
    for url in (
        reverse("training:run_list"),
        reverse("training:run_launch"),
        reverse("training:run_detail", args=[run.pk]),
        reverse("training:run_metrics", args=[run.pk]),
        reverse("training:run_log", args=[run.pk]),
    ):
        assert annotator_client.get(url).status_code == 403, url
    assert annotator_client.post(reverse("training:run_cancel", args=[run.pk])).status_code == 403
    run.refresh_from_db()
    assert not run.cancel_requested


def test_it_lists_runs_and_polls_only_while_one_is_active(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    supervisor.run_record_event(run=run, event={"event": "progress", "step": 3, "total": 12})
    page = researcher_client.get(reverse("training:run_list")).content.decode()
    assert "badge-running" in page and "3 / 12" in page and 'class="pct-25"' in page
    assert 'hx-trigger="every 2s"' in page
    assert "<html" in page

    partial = researcher_client.get(reverse("training:run_list"), **HTMX).content.decode()
    assert "<html" not in partial and 'id="runs-table"' in partial

    supervisor.run_finish(run=run, status=RunStatus.SUCCEEDED)
    partial = researcher_client.get(reverse("training:run_list"), **HTMX).content.decode()
    assert "badge-succeeded" in partial and "every 2s" not in partial


def test_it_shows_the_presets_values_in_the_launch_form(researcher_client):
    from training.kinds import KINDS

    preset = KINDS["rm_preference"].load_preset("tiny")
    page = researcher_client.get(reverse("training:run_launch") + "?kind=rm_preference&preset=tiny").content.decode()
    assert f'name="cfg-learning_rate" id="id_cfg-learning_rate" value="{preset["learning_rate"]}"' in page
    assert f'name="cfg-max_steps" id="id_cfg-max_steps" value="{preset["max_steps"]}"' in page
    assert '<option value="tiny" selected>' in page

    paper = researcher_client.get(reverse("training:run_launch") + "?kind=rm_preference&preset=paper", **HTMX).content.decode()
    assert "<html" not in paper and 'id="config-fields"' in paper
    assert 'value="6000"' in paper and 'value="allenai/longformer-base-4096"' in paper


def _post(client, token_rm_file, **fields):
    data = {"kind": "rm_relevance", "preset": "tiny", "train_split": "", "eval_split": "",
            "train_file": SimpleUploadedFile("train.json", token_rm_file.read_bytes())}
    data.update(fields)
    return client.post(reverse("training:run_launch"), data)


def test_it_refuses_invalid_settings_naming_each_one(researcher_client, token_rm_file):
    response = _post(researcher_client, token_rm_file, **{"cfg-learning_rate": "fast", "cfg-epochs": "two", "overrides": "bogus_setting: 1"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="err-learning_rate">expected a number (like 0.001 or 1e-5), got &#x27;fast&#x27;' in page
    assert 'id="err-epochs">expected a whole number, got &#x27;two&#x27;' in page
    assert "bogus_setting: unknown setting" in page
    assert TrainingRun.objects.count() == 0

    response = _post(researcher_client, token_rm_file, **{"cfg-epochs": "0"})
    assert response.status_code == 400
    assert 'id="err-epochs">must be at least 1' in response.content.decode()
    assert 'value="0"' in response.content.decode()  # the researcher's value stays in the box


def test_it_refuses_unparseable_override_text(researcher_client, token_rm_file):
    response = _post(researcher_client, token_rm_file, overrides="max_steps: [1,\n")
    assert response.status_code == 400
    assert "not valid YAML or JSON" in response.content.decode()


def test_it_launches_a_run_with_only_the_changed_values_as_overrides(researcher_client, token_rm_file, researcher):
    response = _post(researcher_client, token_rm_file, **{"cfg-learning_rate": "0.001", "cfg-max_steps": "7", "overrides": "seed: 3"})
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training:run_detail", args=[run.pk])
    assert run.config["max_steps"] == 7 and run.config["seed"] == 3 and run.config["learning_rate"] == 0.001
    assert run.created_by == researcher and run.status == RunStatus.QUEUED


def test_it_launches_from_a_dataset_split(researcher_client):
    dataset = Dataset.objects.create(name="qa")
    Example.objects.create(dataset=dataset, split="dev", position=0, question="q", has_feedback_format=True)
    response = researcher_client.post(reverse("training:run_launch"), {"kind": "rm_preference", "preset": "tiny", "dataset": "qa", "train_split": "dev", "eval_split": ""})
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert (run.dataset, run.train_split, run.eval_split) == (dataset, "dev", "")
    assert run.config["train_file"].endswith(f"runs/{run.pk}-rm_preference/inputs/feedback/dev.json")

    # SFT trains on policy inputs derived from the feedback when a split has no inputs file (issue 11).
    response = researcher_client.post(reverse("training:run_launch"), {"kind": "sft", "preset": "tiny", "dataset": "qa", "train_split": "dev"})
    assert response.status_code == 302
    sft = TrainingRun.objects.get(kind="sft")
    assert sft.config["train_file"].endswith(f"runs/{sft.pk}-sft/inputs/policy_inputs/dev.json")
    # Reward models still need feedback: a split of prompts alone is refused, naming the format.
    Example.objects.create(dataset=dataset, split="prompts", position=0, question="q2", has_input_format=True)
    response = researcher_client.post(reverse("training:run_launch"), {"kind": "rm_preference", "preset": "tiny", "dataset": "qa", "train_split": "prompts"})
    assert response.status_code == 400
    assert "holds no examples in the feedback (dev_feedback.json) format" in response.content.decode()


def test_it_shows_a_run_with_metrics_samples_log_and_files(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    model = services.run_output_path(run) / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    supervisor.run_record_events(run=run, events=[
        {"event": "start", "total_steps": 10, "wandb_dir": "/tmp/wandb/offline-run-1", "wandb_url": ""},
        {"event": "progress", "step": 5, "total": 10},
        {"event": "metrics", "step": 5, "metrics": {"train/loss": 0.25, "reward/kl": 0.01, "eval/rouge": 0.3}},
        {"event": "sample", "step": 5, "prompt": "question: who?", "text": "Him. Not her.",
         "segments": [{"text": "Him.", "reward": 0.3, "label": "O"}, {"text": " Not her.", "reward": -0.6, "label": "NF-ERR"}], "total_reward": -0.3},
        {"event": "artifact", "kind": "model", "name": "model", "path": "model"},
    ])
    supervisor.run_heartbeat(run=run, log_tail="epoch 1 step 5 loss 0.25")
    page = researcher_client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert "step 5 / 10" in page and 'hx-trigger="every 2s"' in page
    # Shaded by the reward's size against the sample's largest: 0.3 of 0.6 is shade 5 of 10.
    assert '<span class="seg seg-pos shade-5" title="O +0.300">Him.</span>' in page
    assert '<span class="seg seg-neg shade-10" title="NF-ERR -0.600"> Not her.</span>' in page
    assert "epoch 1 step 5 loss 0.25" in page
    assert reverse("training:artifact_download", args=[run.pk, run.artifacts.get().pk]) in page
    assert "/tmp/wandb/offline-run-1" in page and "wandb sync" in page
    assert '<code class="setting-name">learning_<wbr>rate</code>' in page and "Cancel run" in page
    assert "reward/kl" in page  # latest values
    # The poll refreshes what the trainer reports after the page was opened, wandb's folder included.
    partial = researcher_client.get(reverse("training:run_detail", args=[run.pk]), **HTMX).content.decode()
    assert "<html" not in partial and "/tmp/wandb/offline-run-1" in partial


def test_it_stops_the_live_poll_once_the_run_finished(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    url = reverse("training:run_detail", args=[run.pk])
    live = researcher_client.get(url, **HTMX)
    assert live.status_code == 200 and "every 2s" in live.content.decode() and "<html" not in live.content.decode()
    supervisor.run_finish(run=run, status=RunStatus.FAILED, error="The trainer was killed by SIGKILL.", log_tail="last words")
    final = researcher_client.get(url, **HTMX)
    assert final.status_code == 286
    body = final.content.decode()
    assert "badge-failed" in body and "killed by SIGKILL" in body and "last words" in body and "every 2s" not in body
    assert "Restart from the first step" in body  # it saved no checkpoint


def test_it_serves_metric_points_after_a_given_id(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    supervisor.run_record_event(run=run, event={"event": "metrics", "step": 1, "metrics": {"train/loss": 0.9, "train/lr": 0.1}})
    url = reverse("training:run_metrics", args=[run.pk])
    first = researcher_client.get(url).json()
    assert first["series"] == {"train/loss": [[1, 0.9]], "train/lr": [[1, 0.1]]} and first["finished"] is False
    supervisor.run_record_event(run=run, event={"event": "metrics", "step": 2, "metrics": {"train/loss": 0.5}})
    second = researcher_client.get(url, {"after": first["last_id"]}).json()
    assert second["series"] == {"train/loss": [[2, 0.5]]}
    assert second["last_id"] == RunMetric.objects.latest("pk").pk


def test_it_cancels_and_resumes_from_the_run_page(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    response = researcher_client.post(reverse("training:run_cancel", args=[run.pk]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.cancel_requested
    supervisor.run_finish(run=run, status=RunStatus.CANCELLED)
    response = researcher_client.post(reverse("training:run_resume", args=[run.pk]))
    again = TrainingRun.objects.get(resumed_from=run)
    assert response["Location"] == reverse("training:run_detail", args=[again.pk])
    assert researcher_client.get(reverse("training:run_cancel", args=[run.pk])).status_code == 405


def test_it_downloads_files_and_zips_folders(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    folder = services.run_output_path(run)
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text('{"a": 1}')
    (folder / "metrics.json").write_text("{}")
    supervisor.run_record_events(run=run, events=[
        {"event": "artifact", "kind": "model", "name": "model", "path": "model"},
        {"event": "artifact", "kind": "file", "name": "metrics", "path": "metrics.json"},
    ])
    model, metrics = run.artifacts.get(name="model"), run.artifacts.get(name="metrics")
    response = researcher_client.get(reverse("training:artifact_download", args=[run.pk, metrics.pk]))
    assert b"".join(response.streaming_content) == b"{}"
    # A folder is never zipped inside the request: its download goes to the zip's page.
    zip_page = reverse("training:artifact_zip", args=[run.pk, model.pk])
    assert researcher_client.get(reverse("training:artifact_download", args=[run.pk, model.pk]))["Location"] == zip_page
    other = _running(token_rm_file)
    assert researcher_client.get(reverse("training:artifact_download", args=[other.pk, model.pk])).status_code == 404


def test_the_launch_command_queues_a_run_from_a_file(token_rm_file, tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text("max_steps: 5\nlearning_rate: 0.01\n")
    out = io.StringIO()
    call_command("launch_run", "rm_relevance", "--train-file", str(token_rm_file), "--preset", "tiny",
                 "--config", str(config), "--set", "seed=7", stdout=out)
    run = TrainingRun.objects.get()
    assert f"Run #{run.pk} (rm_relevance) queued" in out.getvalue()
    assert (run.config["max_steps"], run.config["learning_rate"], run.config["seed"]) == (5, 0.01, 7)
    assert json.loads(open(run.config["train_file"]).read()) == TOKEN_LINE

    with pytest.raises(CommandError, match="epochs: must be at least 1"):
        call_command("launch_run", "rm_relevance", "--train-file", str(token_rm_file), "--set", "epochs=0")
    with pytest.raises(CommandError, match="no dataset 'nope'"):
        call_command("launch_run", "rm_relevance", "--dataset", "nope")


def _finished_run_with_model(kind: str, settings) -> TrainingRun:
    run = TrainingRun.objects.create(kind=kind, status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    run.output_dir = f"runs/{run.pk}-{kind}"
    run.save()
    (services.run_output_path(run) / "model").mkdir(parents=True)
    supervisor.run_record_event(run=run, event={"event": "artifact", "kind": "model", "name": "model", "path": "model"})
    return run


def test_it_fills_ppo_model_settings_from_finished_runs(researcher_client, settings, tmp_path):
    sft = _finished_run_with_model("sft", settings)
    r1, r2, r3 = (_finished_run_with_model(kind, settings) for kind in ("rm_relevance", "rm_factuality", "rm_completeness"))
    _finished_run_with_model("rm_preference", settings)
    page = researcher_client.get(reverse("training:run_launch") + "?kind=ppo_fine_grained").content.decode()
    # Required models start picked (the newest finished run of the kind); optional ones (the value model) do not.
    assert f'<option value="{sft.pk}" selected>#{sft.pk} sft' in page
    assert f'<option value="{sft.pk}">#{sft.pk} sft' in page
    assert f'<option value="{r1.pk}" selected>#{r1.pk} rm_relevance' in page
    picker = page[page.index('name="source-rm_relevance_model"'):]
    assert f'value="{r2.pk}"' not in picker[: picker.index("</select>")]  # only R1 runs fill the R1 setting

    prompts = SimpleUploadedFile("prompts.json", b'[{"text": "question: q", "answer": ["a"], "question": "q", "passages": []}]')
    data = {"kind": "ppo_fine_grained", "preset": "", "train_file": prompts, "source-policy_model": str(sft.pk),
            "source-rm_relevance_model": str(r1.pk), "source-rm_factuality_model": str(r2.pk)}
    response = researcher_client.post(reverse("training:run_launch"), data)
    assert response.status_code == 400
    assert 'id="err-rm_completeness_model">a ppo_fine_grained run needs this reward model' in response.content.decode()

    prompts.seek(0)
    data.update({"train_file": prompts, "source-rm_completeness_model": str(r3.pk)})
    response = researcher_client.post(reverse("training:run_launch"), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    run = TrainingRun.objects.get(kind="ppo_fine_grained")
    assert run.config["policy_model"] == str(services.run_output_path(sft) / "model")
    assert run.config["rm_completeness_model"] == str(services.run_output_path(r3) / "model")


def test_the_home_card_shows_runs_to_researchers_only(rf, researcher, annotator, token_rm_file):
    from django.template import Context, Template

    run = _run(token_rm_file)
    card = Template('{% include "training/_home_card.html" %}')
    for user, shown in ((researcher, True), (annotator, False)):
        request = rf.get("/")
        request.user = user
        html = card.render(Context({"request": request}))
        assert (reverse("training:run_detail", args=[run.pk]) in html) is shown
        assert ("1 queued or running" in html) is shown


def test_it_starts_the_launch_form_on_splits_that_exist(researcher_client):
    dataset = Dataset.objects.create(name="only-dev")
    Example.objects.create(dataset=dataset, split="dev", position=0, question="q?")
    page = researcher_client.get(reverse("training:run_launch")).content.decode()
    assert 'name="train_split" id="id_train_split" list="split-names" maxlength="32" value="dev"' in page
    # The only split is not evaluated on again (its eval figures would measure memorisation): no evaluation.
    assert 'name="eval_split" id="id_eval_split" list="split-names" maxlength="32" value=""' in page

    Example.objects.create(dataset=dataset, split="train", position=0, question="q?")
    page = researcher_client.get(reverse("training:run_launch")).content.decode()
    assert 'id="id_train_split" list="split-names" maxlength="32" value="train"' in page
    assert 'id="id_eval_split" list="split-names" maxlength="32" value="dev"' in page


def test_default_splits_prefer_train_and_dev_and_fall_back_to_what_exists():
    from training.forms import default_splits

    assert default_splits([]) == ("train", "dev")
    assert default_splits(["dev", "train"]) == ("train", "dev")
    assert default_splits(["dev"]) == ("dev", "dev")
    assert default_splits(["a", "validation"]) == ("a", "validation")


def test_refusals_leave_the_views_as_responses_with_their_status(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    supervisor.run_finish(run=run, status=RunStatus.SUCCEEDED)
    response = researcher_client.post(reverse("training:run_resume", args=[run.pk]))
    assert response.status_code == 409
    assert "only failed or cancelled runs can be resumed; this one is succeeded" in response.content.decode()
    assert not TrainingRun.objects.filter(resumed_from=run).exists()

    missing = researcher_client.get(reverse("training:run_detail", args=[run.pk + 100]))
    assert missing.status_code == 404 and "no training run" in missing.content.decode()
    assert researcher_client.get(reverse("training:run_log", args=[run.pk + 100]), HTTP_HX_REQUEST="true").content == (
        f"no training run {run.pk + 100}".encode()
    )


def test_the_run_page_keeps_a_samples_card_for_kinds_that_report_generations(researcher_client, token_rm_file):
    from training.kinds import KINDS

    ppo = TrainingRun.objects.create(kind="ppo_fine_grained", output_dir="runs/x-ppo_fine_grained")
    page = researcher_client.get(reverse("training:run_detail", args=[ppo.pk])).content.decode()
    assert KINDS["ppo_fine_grained"].dashboard.samples in page and "None yet; the trainer reports some" in page

    reward_model = _running(token_rm_file)  # reports no generations: no card until one arrives
    assert "<h2>Samples" not in researcher_client.get(reverse("training:run_detail", args=[reward_model.pk])).content.decode()
