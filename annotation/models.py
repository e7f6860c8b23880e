"""The qa-feedback world: datasets, examples, responses and the feedback on them.

Span rules are enforced twice: here as database constraints (bounds) and in
annotation/qa/spans.py as pure functions (word boundaries, overlap).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotation.qa import vocab


class ErrorType(models.TextChoices):
    IRRELEVANT = vocab.IRRELEVANT, vocab.ERROR_LABELS[vocab.IRRELEVANT]
    REDUNDANT = vocab.REDUNDANT, vocab.ERROR_LABELS[vocab.REDUNDANT]
    INCOHERENT = vocab.INCOHERENT, vocab.ERROR_LABELS[vocab.INCOHERENT]
    UNVERIFIABLE = vocab.UNVERIFIABLE, vocab.ERROR_LABELS[vocab.UNVERIFIABLE]
    WRONG_GROUNDING = vocab.WRONG_GROUNDING, vocab.ERROR_LABELS[vocab.WRONG_GROUNDING]


class MissingInfoType(models.TextChoices):
    MISSING_ANSWER = vocab.MISSING_ANSWER, vocab.MISSING_LABELS[vocab.MISSING_ANSWER]
    MISSING_MAJOR = vocab.MISSING_MAJOR, vocab.MISSING_LABELS[vocab.MISSING_MAJOR]
    MISSING_MINOR = vocab.MISSING_MINOR, vocab.MISSING_LABELS[vocab.MISSING_MINOR]


class Dataset(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # The task its examples belong to (a name from the task registry): "qa_feedback" or "detox".
    task = models.CharField(max_length=32, default="qa_feedback")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Example(models.Model):
    """One question with its grounding passages, in one split of a dataset.

    The two qa-feedback file formats describe the same question differently;
    each keeps the fields it needs so that both export byte for byte.
    """

    # Foreign keys whose lookups a unique constraint starting with the same column serves carry no index
    # of their own (db_index=False here and below): one index fewer to write per row.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="examples", db_index=False)
    split = models.CharField(max_length=32)
    position = models.PositiveIntegerField(help_text="0-based index of the example in its split's file.")
    question = models.TextField()
    gold = models.TextField(blank=True, help_text="Feedback format: the gold answer.")
    has_feedback_format = models.BooleanField(default=False)
    # Policy-input format (dev.json): prompt text, reference answers, raw passages.
    policy_text = models.TextField(blank=True)
    answers = models.JSONField(default=list, blank=True)
    input_passages = models.JSONField(default=list, blank=True)
    has_input_format = models.BooleanField(default=False)
    # The policy-input file lists its questions in its own order (dev.json and
    # dev_feedback.json hold the same 500 questions, in different orders), so
    # `position` follows the feedback file and this follows the inputs file.
    input_position = models.PositiveIntegerField(
        null=True, blank=True, help_text="0-based index of the example in its split's policy-input file."
    )
    # Task-specific fields a format carries besides the question (detox prompts: toxicity, challenging, ...).
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["dataset", "split", "position"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "split", "position"], name="example_unique_position"),
            models.UniqueConstraint(fields=["dataset", "split", "input_position"], name="example_unique_input_position"),
        ]
        # (dataset, split) lookups use example_unique_position's index.

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.split} example {self.number}"

    @property
    def number(self) -> int:
        """What every page calls it, "example N": 1-based, in the order of the split's file.

        That is the feedback file's order once a split holds both formats (as
        `position`); upload errors count records of a file the same way.
        """
        return self.position + 1


class Passage(models.Model):
    """A grounding passage: a title and its sentences (1-based ids, title excluded)."""

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="passages", db_index=False)
    number = models.PositiveSmallIntegerField(help_text="1-based passage id.")
    title = models.TextField()
    sentences = models.JSONField(default=list)

    class Meta:
        ordering = ["example", "number"]
        constraints = [
            models.UniqueConstraint(fields=["example", "number"], name="passage_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="passage_number_positive"),
        ]


class Response(models.Model):
    """A model output to be judged: `prediction N` of the feedback format."""

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="responses", db_index=False)
    number = models.PositiveSmallIntegerField(help_text="1-based: prediction 1..4.")
    text = models.TextField()
    source_model = models.CharField(max_length=200, blank=True)
    round = models.PositiveSmallIntegerField(default=0)
    # The training run whose policy sampled this answer (new rounds); empty for imported answers.
    source_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="sampled_responses"
    )
    # Per-segment rewards from the reward models that scored it, for display:
    # [{"start": int, "end": int, "reward": float, "label": str, "model": str}], offsets into `text`.
    reward_segments = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["example", "number"]
        constraints = [
            models.UniqueConstraint(fields=["example", "number"], name="response_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="response_number_positive"),
        ]


class FeedbackStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"


class FineGrainedFeedback(models.Model):
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="feedback", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="fine_grained_feedback")
    corrected_prediction = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=FeedbackStatus.choices, default=FeedbackStatus.SUBMITTED)
    # Bumped on every save; a submit carrying an older version is stale and refused.
    version = models.PositiveIntegerField(default=1)
    # Client-chosen key: a retried submit with the same key stores nothing new.
    # Unique by a constraint in Meta rather than unique=True, which on PostgreSQL adds a second index
    # (varchar_pattern_ops, for LIKE) that no query uses.
    submit_token = models.CharField(max_length=64, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["response", "-submitted_at"]
        constraints = [
            models.UniqueConstraint(fields=["response", "annotator"], name="feedback_one_per_annotator"),
            models.UniqueConstraint(fields=["submit_token"], name="feedback_unique_submit_token"),
        ]


class ErrorSpan(models.Model):
    feedback = models.ForeignKey(FineGrainedFeedback, on_delete=models.CASCADE, related_name="errors", db_index=False)
    position = models.PositiveSmallIntegerField(help_text="Order within the feedback's error list.")
    error_type = models.CharField(max_length=32, choices=ErrorType.choices)
    explanation = models.TextField(blank=True)
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()

    class Meta:
        ordering = ["feedback", "position"]
        constraints = [
            models.CheckConstraint(condition=Q(start__gte=0) & Q(end__gt=F("start")), name="errorspan_bounds"),
            models.UniqueConstraint(fields=["feedback", "position"], name="errorspan_unique_position"),
        ]


class MissingInfo(models.Model):
    feedback = models.ForeignKey(
        FineGrainedFeedback, on_delete=models.CASCADE, related_name="missing_info", db_index=False
    )
    position = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=32, choices=MissingInfoType.choices)
    passage_id = models.PositiveSmallIntegerField(help_text="1-based passage number.")
    sentence_ids = models.JSONField(default=list, help_text="1-based sentence numbers within the passage.")

    class Meta:
        ordering = ["feedback", "position"]
        constraints = [
            models.CheckConstraint(condition=Q(passage_id__gte=1), name="missinginfo_passage_positive"),
            models.UniqueConstraint(fields=["feedback", "position"], name="missinginfo_unique_position"),
        ]


class Comparison(models.Model):
    """Pairwise preferences among the four responses: [p12, p13, p14, p23, p24, p34], 0/1/2."""

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="comparisons", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comparisons")
    preference = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=FeedbackStatus.choices, default=FeedbackStatus.SUBMITTED)
    version = models.PositiveIntegerField(default=1)
    # Unique by a constraint in Meta rather than unique=True, which on PostgreSQL adds a second index
    # (varchar_pattern_ops, for LIKE) that no query uses.
    submit_token = models.CharField(max_length=64, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["example", "-submitted_at"]
        constraints = [
            models.UniqueConstraint(fields=["example", "annotator"], name="comparison_one_per_annotator"),
            models.UniqueConstraint(fields=["submit_token"], name="comparison_unique_submit_token"),
        ]


class CampaignTask(models.TextChoices):
    FINE_GRAINED = "fine_grained", "Fine-grained feedback"
    COMPARISON = "comparison", "Comparison"
    BOTH = "both", "Both"


class CampaignOrder(models.TextChoices):
    INPUT = "input", "Input order"
    UNCERTAIN = "uncertain", "Least certain reward models first"
    DISAGREEMENT = "disagreement", "Reward models disagree most first"
    RANDOM = "random", "Random (seeded)"


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="campaigns")
    split = models.CharField(max_length=32)
    task = models.CharField(max_length=16, choices=CampaignTask.choices, default=CampaignTask.BOTH)
    # Overlap: annotators per item; items in the shared share get every annotator of the campaign instead.
    annotators_per_item = models.PositiveSmallIntegerField(default=1)
    shared_share = models.FloatField(
        default=0.0, help_text="Share (0..1) of items annotated by every annotator, for agreement."
    )
    guidelines = models.TextField(blank=True, help_text="Markdown shown beside the annotation pages.")
    # Which items come first in the queue (see CampaignOrder); `random` uses `order_seed`.
    order = models.CharField(max_length=16, choices=CampaignOrder.choices, default=CampaignOrder.INPUT)
    order_seed = models.PositiveIntegerField(default=0)
    # Model in the loop: finished R1 / R2 runs whose predictions are offered as suggestions.
    suggest_relevance_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suggest_factuality_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Share of items shown without suggestions (the bias check's control group).
    no_suggestion_share = models.FloatField(default=0.2)
    # A finished holistic preference RM run: the `disagreement` order compares its ranking with R1/R2's.
    suggest_preference_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when a policy's new round opened this campaign.
    source_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="round_campaigns"
    )
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="campaigns", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_campaigns"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(annotators_per_item__gte=1), name="campaign_annotators_positive"),
            models.CheckConstraint(condition=Q(shared_share__gte=0) & Q(shared_share__lte=1), name="campaign_shared_share_range"),
            models.CheckConstraint(
                condition=Q(no_suggestion_share__gte=0) & Q(no_suggestion_share__lte=1),
                name="campaign_no_suggestion_share_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AssignmentKind(models.TextChoices):
    FINE_GRAINED = "fine_grained", "Fine-grained feedback"
    COMPARISON = "comparison", "Comparison"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "In progress"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """One annotator holding one slot of one item of a campaign, under a lease.

    An item (example + kind) needs `annotators_per_item` slots; the unique
    constraint on (campaign, example, kind, slot) among live rows is what stops
    two annotators from receiving the same slot at once.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="assignments")
    kind = models.CharField(max_length=16, choices=AssignmentKind.choices)
    slot = models.PositiveSmallIntegerField(default=0)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Autosaved work in progress, as the editor's JSON state.
    draft = models.JSONField(default=dict, blank=True)
    draft_version = models.PositiveIntegerField(default=0)
    # Seconds the item's page was open (sent by the page); time per item on the campaign page.
    active_seconds = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "example", "kind", "slot"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "example", "kind", "slot"],
                condition=Q(status__in=["leased", "submitted"]),
                name="assignment_one_live_per_slot",
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "status"]),
            # "Has this annotator a row on this item?", asked of every example the next-item query walks past.
            models.Index(fields=["annotator", "campaign", "example"], name="assignment_annotator_item"),
        ]


class RmDataBuild(models.Model):
    """A background build of reward-model training files for one dataset split."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="rm_builds")
    split = models.CharField(max_length=32)
    splitter = models.CharField(max_length=100, default="auto")
    # Which version of several annotators' work each example contributes (annotation.qa.agreement.RULES).
    aggregate = models.CharField(max_length=16, default="latest")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    out_dir = models.CharField(max_length=500, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class DatasetJob(models.Model):
    """A background import or export of one qa-feedback file: the web's long work, done off the request.

    An import's uploaded file waits in the job's folder until a `default`
    worker reads it; an export is written there and then downloaded.
    """

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        EXPORT = "export", "Export"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    # By name: an import may create the dataset.
    dataset_name = models.CharField(max_length=100)
    split = models.CharField(max_length=32)
    fmt = models.CharField(max_length=16, blank=True, help_text="Export: the format asked for; import: the file's.")
    filename = models.CharField(max_length=255, blank=True, help_text="The uploaded file's name, or the download's.")
    annotator = models.CharField(
        max_length=150, blank=True, help_text="Whose work: an attributed import's annotator, or the one annotator exported."
    )
    rule = models.CharField(max_length=16, blank=True, help_text="Export: how several annotators' work became one record.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Import: bytes of the file read; export: examples written.
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(default=0)
    examples = models.PositiveIntegerField(default=0)
    result = models.TextField(blank=True, help_text="What was done, in one line.")
    error = models.TextField(blank=True)
    problems = models.JSONField(default=list, blank=True, help_text="A refused file's problems, one line each.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class Adjudication(models.Model):
    """A reviewer's gold version of one item (example + kind), stored apart from the annotators' work.

    Fine-grained items keep the qa-feedback `feedback` shape as JSON (errors
    with "error type", "explanation", "start", "end"; missing-info entries;
    the corrected prediction); comparison items keep the six preferences.
    """

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="adjudications")
    kind = models.CharField(max_length=16, choices=AssignmentKind.choices)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="adjudications")
    errors = models.JSONField(default=list, blank=True)
    missing_info = models.JSONField(default=list, blank=True)
    corrected_prediction = models.TextField(blank=True)
    preference = models.JSONField(default=list, blank=True)
    # Set when the reviewer accepted one annotator's version as it stood.
    accepted_from = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    adjudicated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="adjudications"
    )
    adjudicated_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["example", "kind"]
        constraints = [models.UniqueConstraint(fields=["example", "kind"], name="adjudication_one_per_item")]


class ItemNote(models.Model):
    """A reviewer sending an item back to an annotator, or an annotator flagging an item: with a comment.

    Open until resolved: a send-back shows in the annotator's queue until they
    submit the item again; a flag shows to reviewers until one resolves it.
    """

    class Kind(models.TextChoices):
        SEND_BACK = "send_back", "Sent back"
        FLAG = "flag", "Flagged"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="item_notes")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="item_notes")
    item_kind = models.CharField(max_length=16, choices=AssignmentKind.choices)
    # The annotator concerned: the one sent back to, or the one who flagged.
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="item_notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    comment = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["annotator", "kind", "resolved_at"])]


# --- model in the loop: suggestions from reward models -----------------------------------


class SuggestionJob(models.Model):
    """A background scoring of a campaign's responses by its suggester runs (on the `gpu` queue)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="suggestion_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


class Suggestion(models.Model):
    """One segment of a response as a suggester judged it: offsets into `response.text`, label, error probability.

    Every segment is stored (also those judged `O`): the queue orders and the
    per-segment rewards need them all; the page offers only error labels.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="suggestions")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="suggestions")
    run = models.ForeignKey("training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    suggester = models.CharField(max_length=16)  # annotation.qa.suggestions.SUGGESTERS
    position = models.PositiveSmallIntegerField()
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    label = models.CharField(max_length=16)
    probability = models.FloatField()

    class Meta:
        ordering = ["response", "suggester", "position"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="suggestion_bounds"),
            models.CheckConstraint(condition=Q(probability__gte=0) & Q(probability__lte=1), name="suggestion_probability"),
            models.UniqueConstraint(fields=["campaign", "response", "suggester", "position"], name="suggestion_unique_position"),
        ]


class SuggestionEvent(models.Model):
    """An annotator's answer to one suggestion: accepted whole, trimmed to some words, or dismissed."""

    suggestion = models.ForeignKey(Suggestion, on_delete=models.CASCADE, related_name="events")
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="suggestion_events")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=16)  # annotation.qa.suggestions.ACTIONS
    error_type = models.CharField(max_length=32, blank=True)
    start = models.PositiveIntegerField(null=True, blank=True)
    end = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["assignment", "suggestion"])]


class ItemScore(models.Model):
    """Per campaign item, the keys its queue orders sort on (annotation/qa/suggestions.py defines them)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="item_scores")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="+")
    uncertainty = models.FloatField(null=True, blank=True)
    disagreement = models.FloatField(null=True, blank=True)
    random_key = models.FloatField(null=True, blank=True)
    # Per answer number: expected fine-grained reward and preference RM score, for the campaign page.
    scores = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["campaign", "example"]
        constraints = [models.UniqueConstraint(fields=["campaign", "example"], name="itemscore_one_per_item")]
