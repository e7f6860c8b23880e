"""Reads for the model in the loop: suggester runs, the control group, queue order, a page's suggestions,
and the campaign page's bias check and suggester metrics (definitions: annotation/qa/suggestions.py)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db.models import QuerySet

from annotation.models import (
    Adjudication,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Campaign,
    ErrorSpan,
    FeedbackStatus,
    FineGrainedFeedback,
    Response,
    Suggestion,
    SuggestionEvent,
    SuggestionJob,
)
from annotation.qa import suggestions as sq
from annotation.qa.spans import word_spans
from annotation.qa.vocab import ERROR_LABELS, ERROR_TYPES
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER
from annotation.selectors.campaigns import campaign_items, campaign_kinds

# Campaign field of each suggester role, and the training-run kind it must be.
SUGGESTER_RUN_FIELDS = {
    sq.RELEVANCE: "suggest_relevance_run",
    sq.FACTUALITY: "suggest_factuality_run",
    "preference": "suggest_preference_run",
}
SUGGESTER_RUN_KINDS = {sq.RELEVANCE: "rm_relevance", sq.FACTUALITY: "rm_factuality", "preference": "rm_preference"}
ROLE_NAMES = {**sq.SUGGESTER_NAMES, "preference": "Holistic preference RM"}
_SUCCEEDED = "succeeded"


def _run_model():
    # The training app's run model, reached through the campaign's foreign key: annotation never imports training.
    return Campaign._meta.get_field("suggest_relevance_run").related_model


def suggester_run_choices(role: str) -> QuerySet:
    return _run_model().objects.filter(kind=SUGGESTER_RUN_KINDS[role], status=_SUCCEEDED).order_by("-finished_at", "-pk")


def suggester_run_problem(role: str, run_id: int) -> str | None:
    run = _run_model().objects.filter(pk=run_id).first()
    if run is None:
        return f"there is no training run {run_id}"
    if run.kind != SUGGESTER_RUN_KINDS[role]:
        return f"run {run_id} is a {run.kind} run; the {ROLE_NAMES[role]} must be a {SUGGESTER_RUN_KINDS[role]} run"
    if run.status != _SUCCEEDED:
        return f"run {run_id} has not finished successfully (it is {run.status})"
    return None


def campaign_example_ids(campaign: Campaign) -> list[int]:
    """The examples that are items of the campaign, of any kind."""
    ids: set[int] = set()
    for kind in campaign_kinds(campaign):
        ids.update(campaign_items(campaign, kind).values_list("pk", flat=True))
    return sorted(ids)


def no_suggestion_example_ids(campaign: Campaign) -> set[int]:
    return sq.no_suggestion_items(campaign_example_ids(campaign), share=campaign.no_suggestion_share, seed=campaign.order_seed)


def acted_suggestion_ids(*, assignment: Assignment) -> set[int]:
    return set(SuggestionEvent.objects.filter(assignment=assignment).values_list("suggestion_id", flat=True))


@dataclass
class PageSuggestions:
    shown: bool  # False for items of the control group, or when nothing was scored
    control: bool
    items: list[dict] = field(default_factory=list)


def page_suggestions(*, assignment: Assignment, response: Response) -> PageSuggestions:
    """The suggestions the annotator should see on this response: error labels not yet answered, unless a control item."""
    campaign = assignment.campaign
    if not any(getattr(campaign, f"{f}_id") for f in SUGGESTER_RUN_FIELDS.values()):
        return PageSuggestions(shown=False, control=False)
    if assignment.example_id in no_suggestion_example_ids(campaign):
        return PageSuggestions(shown=False, control=True)
    acted = acted_suggestion_ids(assignment=assignment)
    rows = Suggestion.objects.filter(campaign=campaign, response=response).exclude(label="O").order_by("start", "suggester")
    items = []
    for s in rows:
        if s.pk in acted:
            continue
        types = [t for t in ERROR_TYPES if t in sq.SUGGESTER_TYPES[s.suggester]]  # in key order
        items.append(
            {
                "id": s.pk,
                "suggester": s.suggester,
                "name": sq.SUGGESTER_SHORT[s.suggester],
                "start": s.start,
                "end": s.end,
                "text": response.text[s.start : s.end],
                "label": s.label,
                "probability": s.probability,
                "percent": round(100 * s.probability),
                "tag": f"{sq.SUGGESTER_SHORT[s.suggester]} {round(100 * s.probability)}%",
                "types": " ".join(types),
                "type_names": " / ".join(ERROR_LABELS[t] for t in types),
            }
        )
    return PageSuggestions(shown=True, control=False, items=items)


# ---------------------------------------------------------------- campaign page


@dataclass
class GroupFigures:
    name: str
    items: int = 0
    seconds: list[int] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)
    peer_agreement: list[float] = field(default_factory=list)
    gold_agreement: list[float] = field(default_factory=list)

    @staticmethod
    def _mean(values):
        return sum(values) / len(values) if values else None

    @property
    def mean_seconds(self):
        return self._mean(self.seconds)

    @property
    def mean_spans(self):
        return self._mean(self.spans)

    @property
    def mean_peer(self):
        return self._mean(self.peer_agreement)

    @property
    def mean_gold(self):
        return self._mean(self.gold_agreement)


@dataclass
class MetricRow:
    suggester: str
    label: str
    counts: sq.Counts
    annotations: int


@dataclass
class AcceptanceRow:
    suggester: str
    shown: int = 0
    accepted: int = 0
    trimmed: int = 0
    dismissed: int = 0
    types: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float | None:
        return (self.accepted + self.trimmed) / self.shown if self.shown else None

    @property
    def type_list(self) -> list[tuple[str, int]]:
        return [(ERROR_LABELS.get(t, t), n) for t, n in sorted(self.types.items())]


@dataclass
class SuggestOverview:
    campaign: Campaign
    runs: dict
    job: SuggestionJob | None
    stored: int
    control: int
    items: int
    groups: list[GroupFigures]
    acceptance: list[AcceptanceRow]
    metrics: list[MetricRow]


def _submitted_annotations(campaign: Campaign) -> list[dict]:
    """Each submitted fine-grained item of the campaign: example, annotator, seconds, response words, spans."""
    done = list(
        Assignment.objects.filter(campaign=campaign, kind=AssignmentKind.FINE_GRAINED, status=AssignmentStatus.SUBMITTED)
        .values("pk", "example_id", "annotator_id", "active_seconds")
    )
    responses = {
        r.example_id: r
        for r in Response.objects.filter(example_id__in={d["example_id"] for d in done}, number=FINE_GRAINED_RESPONSE_NUMBER)
    }
    feedback = {
        (f.response_id, f.annotator_id): f.pk
        for f in FineGrainedFeedback.objects.filter(response__in=responses.values(), status=FeedbackStatus.SUBMITTED)
    }
    spans = defaultdict(list)
    for fid, etype, start, end in ErrorSpan.objects.filter(feedback_id__in=feedback.values()).values_list(
        "feedback_id", "error_type", "start", "end"
    ):
        spans[fid].append({"error type": etype, "start": start, "end": end})
    out = []
    for d in done:
        response = responses.get(d["example_id"])
        if response is None:
            continue
        fid = feedback.get((response.pk, d["annotator_id"]))
        out.append({**d, "response": response, "errors": spans.get(fid, []) if fid else []})
    return out


def _gold(campaign: Campaign, example_ids) -> dict[int, list[dict]]:
    return {
        a.example_id: list(a.errors)
        for a in Adjudication.objects.filter(example_id__in=example_ids, kind=AssignmentKind.FINE_GRAINED)
    }


def bias_groups(campaign: Campaign, annotations: list[dict], gold: dict[int, list[dict]], control: set[int]) -> list[GroupFigures]:
    groups = {False: GroupFigures("With suggestions"), True: GroupFigures("Without suggestions")}
    by_example = defaultdict(list)
    for a in annotations:
        by_example[a["example_id"]].append(a)
    for example_id, rows in by_example.items():
        group = groups[example_id in control]
        group.items += 1
        words = word_spans(rows[0]["response"].text)
        for a in rows:
            group.seconds.append(a["active_seconds"])
            group.spans.append(len(a["errors"]))
            mine = [(e["start"], e["end"]) for e in a["errors"]]
            for other in rows:
                if other is not a:
                    group.peer_agreement.append(sq.span_agreement(words, mine, [(e["start"], e["end"]) for e in other["errors"]]))
            if example_id in gold:
                group.gold_agreement.append(sq.span_agreement(words, mine, [(e["start"], e["end"]) for e in gold[example_id]]))
    return [groups[False], groups[True]]


def suggester_metrics(campaign: Campaign, annotations: list[dict], gold: dict[int, list[dict]]) -> list[MetricRow]:
    """Word-level precision, recall and F1 of each suggester against the references (see annotation/qa/suggestions.py).

    The reference of an item is its adjudicated version where there is one,
    else every submitted annotation of it (each counted once).
    """
    predicted = defaultdict(list)
    for response_id, suggester, start, end in Suggestion.objects.filter(campaign=campaign).exclude(label="O").values_list(
        "response_id", "suggester", "start", "end"
    ):
        predicted[(response_id, suggester)].append((start, end))
    scored = set(Suggestion.objects.filter(campaign=campaign).values_list("response_id", "suggester").distinct())
    references = []
    seen_gold = set()
    for a in annotations:
        if a["example_id"] in gold:
            if a["example_id"] in seen_gold:
                continue
            seen_gold.add(a["example_id"])
            references.append((a["response"], gold[a["example_id"]]))
        else:
            references.append((a["response"], a["errors"]))
    rows = []
    for suggester in sq.SUGGESTERS:
        counts, n = sq.Counts(), 0
        for response, errors in references:
            if (response.pk, suggester) not in scored:
                continue
            words = word_spans(response.text)
            counts.add(sq.words_in(words, predicted[(response.pk, suggester)]), sq.words_in(words, sq.gold_spans(errors, suggester)))
            n += 1
        if n:
            label = " / ".join(ERROR_LABELS[t] for t in ERROR_TYPES if t in sq.SUGGESTER_TYPES[suggester])
            rows.append(MetricRow(sq.SUGGESTER_NAMES[suggester], label, counts, n))
    return rows


def acceptance_rows(campaign: Campaign, annotations: list[dict], control: set[int]) -> list[AcceptanceRow]:
    """Per suggester: suggestions shown on submitted items with suggestions, and what annotators did with them."""
    rows = {s: AcceptanceRow(sq.SUGGESTER_NAMES[s]) for s in sq.SUGGESTERS}
    shown_items = [a for a in annotations if a["example_id"] not in control]
    per_response = Counter(
        Suggestion.objects.filter(campaign=campaign, response__in=[a["response"] for a in shown_items])
        .exclude(label="O")
        .values_list("response_id", "suggester")
    )
    for a in shown_items:
        for s in sq.SUGGESTERS:
            rows[s].shown += per_response.get((a["response"].pk, s), 0)
    events = SuggestionEvent.objects.filter(assignment_id__in=[a["pk"] for a in shown_items]).values_list(
        "suggestion__suggester", "action", "error_type"
    )
    for suggester, action, error_type in events:
        row = rows[suggester]
        if action == sq.ACCEPT:
            row.accepted += 1
        elif action == sq.TRIM:
            row.trimmed += 1
        else:
            row.dismissed += 1
        if error_type:
            row.types[error_type] += 1
    return [r for r in rows.values() if r.shown]


def campaign_suggest_overview(campaign: Campaign) -> SuggestOverview:
    example_ids = campaign_example_ids(campaign)
    control = sq.no_suggestion_items(example_ids, share=campaign.no_suggestion_share, seed=campaign.order_seed)
    annotations = _submitted_annotations(campaign)
    gold = _gold(campaign, {a["example_id"] for a in annotations})
    runs = {role: getattr(campaign, field) for role, field in SUGGESTER_RUN_FIELDS.items()}
    return SuggestOverview(
        campaign=campaign,
        runs={ROLE_NAMES[role]: run for role, run in runs.items()},
        job=campaign.suggestion_jobs.first(),
        stored=Suggestion.objects.filter(campaign=campaign).count(),
        control=len(control),
        items=len(example_ids),
        groups=bias_groups(campaign, annotations, gold, control),
        acceptance=acceptance_rows(campaign, annotations, control),
        metrics=suggester_metrics(campaign, annotations, gold),
    )


def reward_rows(response: Response, *, hide_source: str | None = None) -> list[dict]:
    """The response's per-segment rewards, one row of text pieces per model (see Response.reward_segments).

    `hide_source` leaves out the segments written by that source (the
    suggestions' scores on an item of the control group).
    """
    by_model = defaultdict(list)
    for segment in response.reward_segments or []:
        if hide_source and segment.get("source") == hide_source:
            continue
        by_model[segment.get("model", "")].append(segment)
    return [
        {"model": model, "pieces": sq.reward_pieces(response.text, segments),
         "total": sum(float(s["reward"]) for s in segments)}
        for model, segments in sorted(by_model.items())
    ]
