"""Training runs launched from the dashboard and the metrics they report."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.choices import BaseChoiceIterator


class KindChoices(BaseChoiceIterator):
    """training/kinds.py's (name, label) pairs, read when first iterated.

    The registry builds every run kind's pydantic config class when imported
    (a quarter of a second): a process that only reads and writes rows (a data
    command, a `default` worker) never needs it. Compares equal to the list, and
    migrations write it as one, so no migration changes.
    """

    def __iter__(self):
        from training import kinds

        yield from kinds.choices()


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class TrainingRun(models.Model):
    name = models.CharField(max_length=200, blank=True)
    # One of training/kinds.py's entries (their names and labels are the choices).
    kind = models.CharField(max_length=32, choices=KindChoices())
    dataset = models.ForeignKey(
        "annotation.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    train_split = models.CharField(max_length=32, blank=True)
    eval_split = models.CharField(max_length=32, blank=True)
    config = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    child_pid = models.PositiveIntegerField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=100, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    # The trainer's `done` summary (final eval scores, saved mean/std, ...).
    summary = models.JSONField(default=dict, blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    wandb_dir = models.CharField(max_length=500, blank=True)
    wandb_url = models.CharField(max_length=500, blank=True)
    # A run is resumed at most once (a second Resume returns the first one's run); chains go run by run.
    resumed_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resumes")
    # The pipeline that started this run, and the stage of it the run is (training/pipelines.py).
    pipeline = models.ForeignKey("Pipeline", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    pipeline_stage = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress_total=0) | Q(progress_step__lte=models.F("progress_total")),
                name="run_progress_within_total",
            ),
            models.UniqueConstraint(fields=["resumed_from"], name="run_resumed_once"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class Pipeline(models.Model):
    """A pipeline of runs (training/pipelines.py), its state kept here so it outlives any worker.

    `stages` maps each stage name to {"run": id, "reused": bool} once the stage
    has a run: the run it created, or a finished run with the same inputs and
    config that it reused. Stages without an entry have not started. The
    orchestration (training.services.pipeline_advance) starts the stages whose
    prerequisites succeeded; it runs when a run finishes and on celery beat.
    """

    # A spec's name in training/pipelines.py (no database choices: tasks register pipelines of their own).
    name = models.CharField(max_length=64)
    dataset = models.ForeignKey("annotation.Dataset", null=True, on_delete=models.SET_NULL, related_name="pipelines")
    train_split = models.CharField(max_length=32)
    eval_split = models.CharField(max_length=32, blank=True)
    preset = models.CharField(max_length=32, default="tiny")
    # {stage: {setting: value}}: the researcher's --set values, on top of the preset.
    overrides = models.JSONField(default=dict, blank=True)
    stages = models.JSONField(default=dict, blank=True)
    # Whether a stage may reuse a succeeded run with the same dataset split and config instead of training again.
    reuse = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.label} #{self.pk}"

    @property
    def label(self) -> str:
        from training import pipelines

        spec = pipelines.PIPELINES.get(self.name)
        return spec.label if spec is not None else self.name

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class RunMetric(models.Model):
    """One scalar logged by a run, under a grouped key such as `train/loss` or `eval/f1`."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    key = models.CharField(max_length=100)
    value = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "key", "step"]
        indexes = [models.Index(fields=["run", "key", "step"])]


class RunSample(models.Model):
    """A generation shown on the run page, with the reward given to each of its segments."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    prompt = models.TextField()
    text = models.TextField()
    # [{"text": str, "reward": float, "label": str}], in order; their texts concatenate to `text`.
    segments = models.JSONField(default=list)
    total_reward = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "-step", "id"]


class Artifact(models.Model):
    class Kind(models.TextChoices):
        MODEL = "model", "Model"
        CHECKPOINT = "checkpoint", "Checkpoint"
        FILE = "file", "File"

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FILE)
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=500, help_text="Relative to MODEL_ROOT.")
    size_bytes = models.BigIntegerField(default=0)
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "kind", "name"]


class RoundJob(models.Model):
    """A new annotation round sampled from a policy run: done in the background, its progress kept here.

    The worker samples `samples` answers for each example of `source_split`
    (the first `limit`, or all), stores them as a new split of the dataset
    (`split`, responses with `round` and `source_run`) and opens `campaign`.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="round_jobs")
    dataset = models.ForeignKey("annotation.Dataset", on_delete=models.CASCADE, related_name="round_jobs")
    source_split = models.CharField(max_length=32)
    samples = models.PositiveSmallIntegerField(default=4)
    limit = models.PositiveIntegerField(default=0, help_text="0: every example of the split.")
    campaign_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    # Set once written: the round's number, its split, and the campaign opened over it.
    round = models.PositiveSmallIntegerField(default=0)
    split = models.CharField(max_length=32, blank=True)
    campaign = models.ForeignKey("annotation.Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    examples = models.PositiveIntegerField(default=0)
    responses = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Asked for while the worker samples: it stops after the batch in hand and stores nothing.
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Refreshed with each batch of answers; a running round whose worker died goes stale and is failed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int:
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_done / self.progress_total))


class WorkerPresence(models.Model):
    """A Celery worker that says it is alive: written when it starts and every half minute after, deleted when
    it stops. The launch form reads it to pick presets that fit the workers online."""

    hostname = models.CharField(max_length=200, unique=True)
    queues = models.JSONField(default=list)
    gpus = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["hostname"]
