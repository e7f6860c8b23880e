"""Review pages for reviewers (researchers included): the queue, one item's versions side by side, the gold version, send-back, flags.

The gold-version form works without scripts: checkboxes take spans and
missing-info entries from any annotator (each span's type can be changed),
the correction is a text box and the six answers are radio buttons.
static/js/review.js adds keyboard shortcuts and "use this correction".
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotation.models import AssignmentKind, Campaign, Example, ItemNote
from annotation.permissions import reviewer_required
from annotation.qa.errors import BadRequest
from annotation.qa.vocab import ERROR_LABELS, MISSING_LABELS, PREFERENCE_PAIRS
from annotation.selectors.agreement import campaign_agreement
from annotation.selectors.reviews import ReviewItem, open_flags, review_item, review_queue
from annotation.selectors.suggestions import reward_rows
from annotation.services.reviews import (
    GoldRefused,
    adjudication_accept,
    adjudication_save,
    item_send_back,
    note_resolve,
)
from annotation.views.annotate import ERROR_TYPE_BY_VALUE, ERROR_TYPE_CHOICES, MISSING_TYPE_BY_VALUE

def _item(campaign: Campaign, kind: str, number: int) -> Example:
    if kind not in AssignmentKind.values:
        raise Http404(f"{kind!r} is not a kind of item.")
    return get_object_or_404(Example, dataset_id=campaign.dataset_id, split=campaign.split, position=number - 1)


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a whole number, not {value!r}", field=name) from None


@reviewer_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Reviewers' way in: the open campaigns, each with its review queue and agreement figures."""
    campaigns = Campaign.objects.filter(is_active=True).select_related("dataset").order_by("-created_at")
    return render(request, "annotation/review/home.html", {"campaigns": campaigns})


@reviewer_required
@require_GET
def queue(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("dataset"), pk=pk)
    rows = review_queue(campaign)
    return render(request, "annotation/review/queue.html", {"campaign": campaign, "rows": rows, "flags": open_flags(campaign)})


def _span_rows(item: ReviewItem, taken: dict[str, str | None]) -> list[dict]:
    """The annotators' spans for the gold builder; `taken` maps a taken span to the type it has in the gold (None: its own)."""
    rows = []
    for version in item.versions:
        for index, error in enumerate(version.feedback["errors"] if version.feedback else []):
            key = f"{version.key}:{index}"
            rows.append({
                "key": key, "version": version, "index": index, "error": error,
                "error_type": taken.get(key) or error["error type"],
                "type": ERROR_TYPE_BY_VALUE.get(error["error type"]), "snippet": item.text[error["start"] : error["end"]],
                "taken": key in taken,
            })
    return sorted(rows, key=lambda r: (r["error"]["start"], r["version"].colour))


def _gold_keys(item: ReviewItem) -> tuple[dict[str, str], set[str]]:
    """The annotators' spans (with the type the gold gives them) and entries that the stored gold version holds."""
    if item.gold is None or item.kind != AssignmentKind.FINE_GRAINED:
        return {}, set()
    gold_types = {(g["start"], g["end"]): g["error type"] for g in item.gold.errors}
    spans, missing, used = {}, set(), set()
    for version in item.versions:
        for index, error in enumerate(version.feedback["errors"]):
            mark = (error["start"], error["end"])
            if mark in used or mark not in gold_types:
                continue
            spans[f"{version.key}:{index}"] = gold_types[mark]
            used.add(mark)
        for index, entry in enumerate(version.feedback["missing-info"]):
            if entry in item.gold.missing_info and f"m{entry}" not in used:
                missing.add(f"{version.key}:{index}")
                used.add(f"m{entry}")
    return spans, missing


def _decorate_lanes(item: ReviewItem) -> None:
    """Give each marked word its type's look: CSS class, key (the pattern's label) and name; mark where spans start."""
    for version in item.versions:
        previous = None
        for token in version.lane:
            choice = ERROR_TYPE_BY_VALUE.get(token["type"]) if token["type"] else None
            if choice is not None:
                token.update(css=choice.css, tag=choice.key, label=f"{version.annotator.get_username()}: {choice.label}")
                token["first"] = token["span"] != previous
            previous = token["span"]


def _page(request, item: ReviewItem, *, status: int = 200, problems=None, posted=None) -> HttpResponse:
    taken, taken_missing = _gold_keys(item)
    if posted is not None:
        taken = {key: posted.get(f"type-{key}") for key in posted.getlist("span")}
        taken_missing = set(posted.getlist("missing"))
    correction = item.text
    if posted is not None:
        correction = posted.get("corrected-prediction", item.text)
    elif item.gold is not None and item.kind == AssignmentKind.FINE_GRAINED:
        correction = item.gold.corrected_prediction
    elif item.versions and item.versions[0].feedback:
        correction = item.versions[0].feedback["corrected-prediction"]
    missing_rows = [
        {"key": f"{v.key}:{i}", "version": v, "entry": e, "label": MISSING_LABELS.get(e["error type"], e["error type"]),
         "css": getattr(MISSING_TYPE_BY_VALUE.get(e["error type"]), "css", ""), "taken": f"{v.key}:{i}" in taken_missing,
         "quotes": [item.passages[e["passage_id"] - 1][s] for s in e["sentence_id"]
                    if 1 <= e["passage_id"] <= len(item.passages) and 0 <= s < len(item.passages[e["passage_id"] - 1])]}
        for v in item.versions for i, e in enumerate(v.feedback["missing-info"] if v.feedback else [])
    ]
    pairs = []
    gold_pref = item.gold.preference if item.gold is not None and item.gold.preference else None
    for index, (a, b) in enumerate(PREFERENCE_PAIRS):
        answers = [(v, v.preference[index]) for v in item.versions if v.preference]
        values = [value for _v, value in answers]
        chosen = gold_pref[index] if gold_pref else (max(set(values), key=values.count) if values else None)
        if posted is not None and posted.get(f"pref-{index}", "") in ("0", "1", "2"):
            chosen = int(posted[f"pref-{index}"])
        pairs.append({"index": index, "a": a, "b": b, "answers": [(v, {1: f"{a} better", 2: f"{b} better", 0: "Equal"}.get(x, x)) for v, x in answers],
                      "disagree": item.disagree[index] if index < len(item.disagree) else False, "chosen": chosen,
                      "options": [(1, f"{a} better"), (2, f"{b} better"), (0, "Equal")]})
    _decorate_lanes(item)
    context = {
        "corrections": [v.feedback["corrected-prediction"] for v in item.versions if v.feedback],
        "item": item, "campaign": item.campaign, "example": item.example, "is_fine_grained": item.kind == AssignmentKind.FINE_GRAINED,
        "span_rows": _span_rows(item, taken), "missing_rows": missing_rows, "correction": correction, "pairs": pairs,
        "error_types": ERROR_TYPE_CHOICES, "error_labels": ERROR_LABELS, "problems": problems or [],
        "gold_base_version": item.gold.version if item.gold else 0,
        "open_notes": [n for n in item.notes if n.resolved_at is None],
        # Per-segment rewards of response 1 (a policy's new round, or scored by reward models), as on the annotation page.
        "reward_rows": reward_rows(item.responses[0]) if item.responses and item.kind == AssignmentKind.FINE_GRAINED else [],
    }
    return render(request, "annotation/review/item.html", context, status=status)


@reviewer_required
@require_GET
def item(request: HttpRequest, pk: int, kind: str, number: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("dataset"), pk=pk)
    example = _item(campaign, kind, number)
    return _page(request, review_item(campaign=campaign, example=example, kind=kind))


def _back_to(campaign: Campaign, kind: str, example: Example) -> str:
    return reverse("annotation:review_item", args=[campaign.pk, kind, example.number])


@reviewer_required
@require_POST
def accept(request: HttpRequest, pk: int, kind: str, number: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    example = _item(campaign, kind, number)
    annotator = get_object_or_404(get_user_model(), pk=_int(request.POST.get("annotator"), "annotator"))
    adjudication_accept(example=example, kind=kind, annotator=annotator, reviewer=request.user, campaign=campaign,
                        base_version=_int(request.POST.get("version"), "version"))
    messages.success(request, f"Gold version saved: {annotator.get_username()}'s version of example {example.number}, as it stands.")
    return redirect(_back_to(campaign, kind, example))


def _gold_feedback(item: ReviewItem, post) -> dict:
    """The gold `feedback` block the form describes: the taken spans (with their types as chosen), entries, correction."""
    by_key = {v.key: v for v in item.versions}

    def part(key: str, field: str) -> tuple:
        owner, _, index = key.partition(":")
        version = by_key.get(owner)
        entries = version.feedback[field] if version and version.feedback else []
        if not index.isdigit() or int(index) >= len(entries):
            raise BadRequest(f"{key!r} names no {field} entry of this item's annotators", field=field)
        return version, entries[int(index)]

    errors = []
    for key in post.getlist("span"):
        version, error = part(key, "errors")
        error = dict(error)
        chosen = post.get(f"type-{key}", error["error type"])
        if chosen != error["error type"]:
            error["error type"] = chosen
            error["explanation"] = ""
        errors.append(error)
    missing = [dict(part(key, "missing-info")[1]) for key in post.getlist("missing")]
    return {
        "errors": sorted(errors, key=lambda e: e["start"]),
        "missing-info": missing,
        "corrected-prediction": post.get("corrected-prediction", ""),
    }


@reviewer_required
@require_POST
def save(request: HttpRequest, pk: int, kind: str, number: int) -> HttpResponse:
    """Store the gold version built on the page from the annotators' parts."""
    campaign = get_object_or_404(Campaign.objects.select_related("dataset"), pk=pk)
    example = _item(campaign, kind, number)
    item = review_item(campaign=campaign, example=example, kind=kind)
    base_version = _int(request.POST.get("version"), "version")
    try:
        if kind == AssignmentKind.FINE_GRAINED:
            adjudication_save(example=example, kind=kind, reviewer=request.user, base_version=base_version,
                              feedback=_gold_feedback(item, request.POST), campaign=campaign)
        else:
            preference = [_int(request.POST.get(f"pref-{i}"), f"answer {a} vs {b}") for i, (a, b) in enumerate(PREFERENCE_PAIRS)]
            adjudication_save(example=example, kind=kind, reviewer=request.user, base_version=base_version,
                              preference=preference, campaign=campaign)
    except GoldRefused as exc:
        messages.error(request, exc.message)
        return _page(request, item, status=exc.status, problems=_describe(exc.problems), posted=request.POST)
    messages.success(request, f"Gold version of example {example.number} saved.")
    return redirect(_back_to(campaign, kind, example))


def _describe(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    described = []
    for where, message in problems:
        if where.startswith("feedback.errors["):
            number, _, rest = where[len("feedback.errors[") :].partition("]")
            where = f"Gold span {int(number) + 1}" + (f" ({rest.lstrip('.')})" if rest.strip(".") else "") if number.isdigit() else where
        elif where.startswith("feedback.missing-info["):
            where = "Missing-info entry " + where[len("feedback.missing-info[") :].replace("]", "", 1)
        described.append((where, message.replace("error ", "gold span ")))
    return described


@reviewer_required
@require_POST
def send_back(request: HttpRequest, pk: int, kind: str, number: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    example = _item(campaign, kind, number)
    annotator = get_object_or_404(get_user_model(), pk=_int(request.POST.get("annotator"), "annotator"))
    item_send_back(campaign=campaign, example=example, item_kind=kind, annotator=annotator, author=request.user,
                   comment=request.POST.get("comment", ""))
    messages.success(request, f"Sent back to {annotator.get_username()}; it shows on their “My work” page until they submit again.")
    return redirect(_back_to(campaign, kind, example))


@reviewer_required
@require_POST
def resolve(request: HttpRequest, pk: int, note_pk: int) -> HttpResponse:
    note = get_object_or_404(ItemNote, pk=note_pk, campaign_id=pk)
    note_resolve(note=note, reviewer=request.user)
    messages.success(request, f"{note.get_kind_display()} note on example {note.example.number} resolved.")
    following = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(following, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        following = reverse("annotation:review_queue", args=[pk])
    return redirect(following)


def _figure(value) -> dict:
    """An alpha or F1 for the page: the number, and a bar width (negative alphas draw no bar)."""
    if value is None:
        return {"value": None, "pct": 0, "level": "none"}
    level = "good" if value >= 0.8 else "fair" if value >= 0.667 else "low"
    return {"value": value, "pct": max(0, min(100, round(100 * value))), "level": level}


def agreement_context(campaign: Campaign) -> dict:
    figures = campaign_agreement(campaign=campaign)
    per_type = [
        {"label": ERROR_LABELS[error_type], "css": ERROR_TYPE_BY_VALUE[error_type].css, "key": ERROR_TYPE_BY_VALUE[error_type].key,
         "figure": _figure(alpha)}
        for error_type, alpha in figures["errors"]["per_type"].items()
    ]
    annotators = [
        {"name": name, "items": row["items"], "errors": _figure(row["errors_alpha"]), "preference": _figure(row["preference_alpha"]),
         "f1": _figure(row["span_f1_exact"]),
         "others": [{"name": other, "items": o["items"], "errors": _figure(o["errors_alpha"]),
                     "preference": _figure(o["preference_alpha"]), "f1": _figure(o["span_f1_exact"])}
                    for other, o in row["others"].items()]}
        for name, row in figures["per_annotator"].items()
    ]
    return {
        "figures": figures,
        "overall": [
            ("Errors, Krippendorff's α (word types)", _figure(figures["errors"]["alpha"])),
            ("Exact-span F1 (mean over pairs)", _figure(figures["errors"]["span_f1_exact"])),
            ("Preferences, Krippendorff's α", _figure(figures["preference"]["alpha"])),
        ],
        "per_type": per_type,
        "annotator_rows": annotators,
    }


@reviewer_required
@require_GET
def agreement(request: HttpRequest, pk: int) -> HttpResponse:
    """The figures of `manage.py agreement`, over this campaign's annotators: overall, per error type, per annotator."""
    campaign = get_object_or_404(Campaign.objects.select_related("dataset"), pk=pk)
    return render(request, "annotation/review/agreement.html", {"campaign": campaign, **agreement_context(campaign)})
