"""Review pages for reviewers (researchers included): the queue, one item's versions side by side, the gold version, send-back, flags.

The gold-version form works without scripts: checkboxes take spans and
missing-info entries from any annotator (each span's type can be changed),
the correction is a text box and the six answers are radio buttons.
static/js/review.js adds keyboard shortcuts, "use this correction", moving a
span's bounds a word at a time and drawing a span no annotator marked (the
reviewer's own, keyed `own:N`); each row sends its bounds as `start-KEY` and
`end-KEY`, and the same span rules as for annotations check them on save.
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
from annotation.qa.spans import word_spans
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


# The key prefix of a span the reviewer drew or re-bounded, which no annotator marked as it stands ("own:3").
OWN = "own"


def _span_rows(
    item: ReviewItem, taken: dict[str, str | None], bounds: dict[str, tuple[int, int]], own: list[dict]
) -> list[dict]:
    """The gold builder's spans: each annotator's, and the reviewer's own (`own`: key, type, start, end).

    `taken` maps a taken span to the type it has in the gold (None: its own);
    `bounds` gives the (start, end) a span was moved to on the page.
    """
    rows = []
    for version in item.versions:
        for index, error in enumerate(version.feedback["errors"] if version.feedback else []):
            key = f"{version.key}:{index}"
            start, end = bounds.get(key, (error["start"], error["end"]))
            rows.append({
                "key": key, "version": version, "index": index, "error": error, "start": start, "end": end,
                "moved": (start, end) != (error["start"], error["end"]),
                "error_type": taken.get(key) or error["error type"],
                "type": ERROR_TYPE_BY_VALUE.get(error["error type"]), "snippet": item.text[start:end],
                "taken": key in taken,
            })
    for span in own:
        rows.append({**span, "own": True, "taken": True, "error_type": span["type"],
                     "type": ERROR_TYPE_BY_VALUE.get(span["type"]), "snippet": item.text[span["start"] : span["end"]]})
    return sorted(rows, key=lambda r: (r["start"], 0 if r.get("own") else r["version"].colour))


def _gold_keys(item: ReviewItem) -> tuple[dict[str, str], set[str], list[dict]]:
    """What the stored gold version holds: the annotators' spans it took (with the types it gives them), their
    missing-info entries it took, and its own spans (drawn or re-bounded by a reviewer: no annotator's as they stand)."""
    if item.gold is None or item.kind != AssignmentKind.FINE_GRAINED:
        return {}, set(), []
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
    own = [
        {"key": f"{OWN}:{number}", "type": g["error type"], "start": g["start"], "end": g["end"], "explanation": g["explanation"]}
        for number, g in enumerate(g for g in item.gold.errors if (g["start"], g["end"]) not in used)
    ]
    return spans, missing, own


def _posted_bounds(post, key: str) -> tuple[int, int] | None:
    """The (start, end) the page moved span `key` to, or None when it sent none."""
    start, end = post.get(f"start-{key}"), post.get(f"end-{key}")
    if start is None and end is None:
        return None
    return _int(start, f"the start of span {key}"), _int(end, f"the end of span {key}")


def _posted_spans(post) -> tuple[dict[str, str | None], dict[str, tuple[int, int]], list[dict]]:
    """The page's spans as posted: taken annotators' spans with their types, moved bounds, the reviewer's own
    (with the explanation a stored one carries, so saving the page again keeps it)."""
    taken, bounds, own = {}, {}, []
    for key in post.getlist("span"):
        moved = _posted_bounds(post, key)
        if key.startswith(f"{OWN}:"):
            if moved is None:
                raise BadRequest(f"span {key!r} has no bounds", field="span")
            own.append({"key": key, "type": post.get(f"type-{key}", ""), "start": moved[0], "end": moved[1],
                        "explanation": post.get(f"explanation-{key}", "")})
            continue
        taken[key] = post.get(f"type-{key}")
        if moved is not None:
            bounds[key] = moved
    return taken, bounds, own


def _answer_words(text: str) -> list[dict]:
    """Each word of the answer with its offsets and the spaces after it, for the page to draw spans on."""
    words = word_spans(text)
    return [
        {"start": start, "end": end, "text": text[start:end], "space": text[end : words[i + 1][0] if i + 1 < len(words) else len(text)]}
        for i, (start, end) in enumerate(words)
    ]


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
    taken, taken_missing, own = _gold_keys(item)
    bounds: dict[str, tuple[int, int]] = {}
    if posted is not None:
        taken, bounds, own = _posted_spans(posted)
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
        "span_rows": _span_rows(item, taken, bounds, own), "missing_rows": missing_rows,
        # The answer word by word (code-point offsets, as spans count them): the page draws and moves spans on these.
        "answer_words": _answer_words(item.text) if item.kind == AssignmentKind.FINE_GRAINED else [],
        "own_prefix": OWN, "correction": correction, "pairs": pairs,
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
    taken, bounds, own = _posted_spans(post)
    for key, chosen in taken.items():
        version, error = part(key, "errors")
        error = dict(error)
        chosen = chosen or error["error type"]
        if chosen != error["error type"]:
            error["error type"] = chosen
            error["explanation"] = ""
        # New bounds keep the annotator's explanation: the same fault, marked more exactly.
        error["start"], error["end"] = bounds.get(key, (error["start"], error["end"]))
        errors.append(error)
    errors += [{"error type": s["type"], "explanation": s["explanation"], "start": s["start"], "end": s["end"]} for s in own]
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
