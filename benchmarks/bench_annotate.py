"""Server time per request on the annotation pages: open an item, edit it, submit it.

    .venv/bin/python benchmarks/bench_annotate.py [--examples 40] [--database-url URL] [--count-calls]
        [--baseline-repo PATH]   # another checkout (with its node_modules), measured in the same run

An annotator works through a campaign (fine-grained feedback and comparison)
over the first N examples of the shared dev_feedback.json, replaying each
example's real feedback through the same endpoints the browser uses: every
error span is marked with an `add_span` edit (and its explanation or cited
sentence set), every missing-information entry added, the correction typed,
then the item submitted; each comparison is answered and submitted. Each
request goes through Django's full stack (middleware, sessions, templates,
database) via the test client, so its time is the server's time without the
network.

By default everything runs in a throwaway SQLite file in a temporary folder;
with --database-url the given (scratch) database is migrated and used, and
the benchmark's rows are deleted afterwards. Prints the median, 90th
percentile and maximum milliseconds and the median SQL queries per request
kind, and checks that what was stored equals the shared file's feedback.

--count-calls also counts the Python function calls of each request (under
cProfile, so its times are then inflated): a figure that, unlike time, does
not move with the machine's load. --baseline-repo runs the same benchmark
on another checkout's code in a child process and prints both side by side.
"""

import argparse
import cProfile
import json
import os
import pstats
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GRANARY_SHARED_DIR", REPO.parent / "shared")) / "data" / "qa_feedback"
HTMX = {"HTTP_HX_REQUEST": "true"}
ANSWERS = {1: "first", 2: "second", 0: "equal"}
TARGET_MS = 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=40, help="examples of dev_feedback.json to annotate (default 40)")
    parser.add_argument("--database-url", help="scratch database to use instead of a temporary SQLite file")
    parser.add_argument("--count-calls", action="store_true", help="count each request's Python function calls (times inflate)")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose code is measured (default this one)")
    parser.add_argument("--baseline-repo", type=Path, help="another checkout, measured the same way in the same run")
    parser.add_argument("--summary-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_repo:
        _side_by_side(args)
        return
    summary = _measure(args)
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary))


def _side_by_side(args) -> None:
    """This checkout, then the baseline, each in its own process; then their medians side by side."""
    summaries = {}
    for label, repo in (("this checkout", args.repo), ("baseline", args.baseline_repo)):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, __file__, "--examples", str(args.examples), "--repo", str(repo), "--summary-json", out.name]
            command += ["--database-url", args.database_url] if args.database_url else []
            command += ["--count-calls"] if args.count_calls else []
            print(f"== {label}: {repo}", flush=True)
            subprocess.run(command, check=True)
            print(flush=True)
            summaries[label] = json.loads(Path(out.name).read_text())
    ours, base = summaries["this checkout"], summaries["baseline"]
    print(f"{'request':<14} {'median ms':>10} {'baseline':>9} {'queries':>8} {'baseline':>9}" + (f" {'calls':>8} {'baseline':>9}" if args.count_calls else ""))
    for kind in ours:
        line = f"{kind:<14} {ours[kind]['median_ms']:>10.1f} {base[kind]['median_ms']:>9.1f} {ours[kind]['queries']:>8.0f} {base[kind]['queries']:>9.0f}"
        if args.count_calls:
            line += f" {ours[kind]['calls']:>8.0f} {base[kind]['calls']:>9.0f}"
        print(line)


def _measure(args) -> dict:

    scratch = tempfile.TemporaryDirectory(prefix="granary-bench-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{scratch.name}/bench.sqlite3"
    os.environ["GRANARY_VAR_DIR"] = scratch.name
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    # The test client speaks plain HTTP: no HTTPS redirect.
    os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    sys.path.insert(0, str(args.repo.resolve()))
    os.chdir(args.repo)

    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from annotation.models import Campaign, Comparison, Dataset, Example, FineGrainedFeedback, Passage, Response
    from annotation.qa.vocab import REDUNDANT, WRONG_GROUNDING
    from annotation.selectors.annotate import stored_fine_grained

    call_command("migrate", verbosity=0)
    # DEBUG off serves hashed static names from the collected files, as in production.
    call_command("collectstatic", "--noinput", verbosity=0)
    records = json.loads((DATA / "dev_feedback.json").read_text())[: args.examples]
    name = f"bench-annotate-{os.getpid()}"
    dataset = Dataset.objects.create(name=name)
    for position, record in enumerate(records):
        example = Example.objects.create(dataset=dataset, split="dev", position=position, question=record["question"], gold=record["gold"])
        Passage.objects.bulk_create(
            Passage(example=example, number=n, title=p[0], sentences=p[1:]) for n, p in enumerate(record["passages"], start=1)
        )
        Response.objects.bulk_create(Response(example=example, number=n, text=record[f"prediction {n}"]) for n in range(1, 5))
    user = User.objects.create_user(f"{name}-annotator")
    user.groups.add(Group.objects.get_or_create(name="annotator")[0])
    campaign = Campaign.objects.create(name=name, dataset=dataset, split="dev", task="both")
    campaign.annotators.add(user)

    client = Client()
    client.force_login(user)
    timings: dict[str, list[float]] = defaultdict(list)
    queries: dict[str, list[int]] = defaultdict(list)
    calls: dict[str, list[int]] = defaultdict(list)

    def request(kind: str, method: str, url: str, data=None, **headers):
        profile = cProfile.Profile() if args.count_calls else None
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            if profile:
                profile.enable()
            response = getattr(client, method)(url, data, **headers) if data is not None else getattr(client, method)(url, **headers)
            if profile:
                profile.disable()
            timings[kind].append((time.perf_counter() - began) * 1000)
        queries[kind].append(len(captured))
        if profile:
            calls[kind].append(pstats.Stats(profile).total_calls)
        if response.status_code not in (200, 302):
            raise SystemExit(f"{kind} {url} answered {response.status_code}: {response.content[:500]!r}")
        return response

    def hidden(html: str, field: str) -> str:
        marker = f'name="{field}" value="'
        start = html.index(marker) + len(marker)
        return html[start : html.index('"', start)]

    began = time.perf_counter()
    url = request("start", "post", reverse("annotation:campaign_start", args=[campaign.pk]))["Location"]
    mismatches = 0
    while re.search(r"/annotation/work/\d+/$", url or ""):
        html = request("open page", "get", url).content.decode()
        fields = {f: hidden(html, f) for f in ("version", "submit_token", "draft_version")}
        draft_url = url + "draft/"
        position = Example.objects.get(assignments__pk=int(url.rstrip("/").split("/")[-1])).position
        record = records[position]
        version = int(fields["draft_version"])

        def edit(values):
            nonlocal version
            response = request("edit (htmx)", "post", draft_url, {**values, "draft_version": version}, **HTMX)
            version += 1
            return response

        if 'id="fg-form"' in html:
            feedback = record["feedback"]
            explanations = {}
            for index, error in enumerate(feedback["errors"]):
                edit({"op": "add_span", "start": error["start"], "end": error["end"], "type": error["error type"]})
                if error["error type"] == WRONG_GROUNDING:
                    cited = json.loads(error["explanation"])
                    sentences = " ".join(map(str, cited["sentence_id"]))
                    edit({"op": "set_grounding", "index": index, "passage_id": cited["passage_id"], "sentence_ids": sentences})
                elif error["error type"] == REDUNDANT:
                    explanations[f"explanation-{index}"] = error["explanation"]
            for entry in feedback["missing-info"]:
                sentences = " ".join(map(str, entry["sentence_id"]))
                edit({"op": "add_missing", "missing_type": entry["error type"], "passage_id": entry["passage_id"], "sentence_ids": sentences})
            text = {"corrected-prediction": feedback["corrected-prediction"], **explanations}
            edit(text)  # the autosave after typing
            fields["draft_version"] = version
            url = request("submit", "post", url + "submit/", {**fields, **text}, **HTMX)["HX-Redirect"]
            response_1 = Response.objects.get(example__dataset=dataset, example__position=position, number=1)
            stored = stored_fine_grained(response=response_1, annotator=user)
            mismatches += stored is None or stored.feedback != feedback
        else:
            answers = {f"pair-{i}": ANSWERS[value] for i, value in enumerate(record["preference"])}
            request("edit (htmx)", "post", draft_url, {**answers, "draft_version": version}, **HTMX)
            fields["draft_version"] = version + 1
            url = request("submit", "post", url + "submit/", {**fields, **answers}, **HTMX)["HX-Redirect"]
    elapsed = time.perf_counter() - began

    stored_feedback = FineGrainedFeedback.objects.filter(annotator=user).count()
    stored_comparisons = Comparison.objects.filter(annotator=user).count()
    database = connection.vendor
    print(f"Annotated {len(records)} examples of dev_feedback.json ({stored_feedback} fine-grained, {stored_comparisons} comparisons)")
    print(f"on {database}, {sum(len(t) for t in timings.values())} requests in {elapsed:.1f} s; stored feedback differing from the file: {mismatches}")
    print()
    print(f"{'request':<14} {'count':>6} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'queries':>8}" + (f" {'calls':>8}" if calls else ""))
    summary = {}
    for kind in ("start", "open page", "edit (htmx)", "submit"):
        values = sorted(timings[kind])
        p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
        summary[kind] = {"median_ms": statistics.median(values), "queries": statistics.median(queries[kind]),
                         "calls": statistics.median(calls[kind]) if calls else None}
        print(
            f"{kind:<14} {len(values):>6} {statistics.median(values):>10.1f} {p90:>8.1f} {values[-1]:>8.1f} {statistics.median(queries[kind]):>8.0f}"
            + (f" {statistics.median(calls[kind]):>8.0f}" if calls else "")
        )
    every = sorted(t for kind in timings for t in timings[kind])
    median = statistics.median(every)
    print(f"{'all':<14} {len(every):>6} {median:>10.1f} {every[int(0.9 * len(every))]:>8.1f} {every[-1]:>8.1f}")
    print()
    print(f"Median server time per request: {median:.1f} ms (target: under {TARGET_MS:.0f} ms) -> {'OK' if median < TARGET_MS else 'TOO SLOW'}"
          + (" (times under cProfile, inflated)" if calls else ""))

    if args.database_url:
        Campaign.objects.filter(pk=campaign.pk).delete()
        dataset.delete()
        user.delete()
    if mismatches or stored_feedback != len(records) or stored_comparisons != len(records):
        raise SystemExit("the stored annotations do not match the shared file")
    return summary


if __name__ == "__main__":
    main()
