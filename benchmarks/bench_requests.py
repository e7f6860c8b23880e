"""CPU per annotation request in one Python process, beside another checkout's code: what a gunicorn worker spends.

    .venv/bin/python benchmarks/bench_requests.py [--annotations 300] [--rounds 4] [--baseline PATH]
        [--database-url postgres://postgres@127.0.0.1:5432/granary_bench_requests] [--cache-url redis://127.0.0.1:6379/14]

bench_load.py measures the whole machine under 20 clients, where the clients,
PostgreSQL and the server share two cores and the machine's speed moves from
minute to minute. This one isolates the web process: it builds the same
scratch database as bench_load (1,000 examples, a campaign of both kinds, two
annotators per item; the database's name must contain "bench"), then, in a
fresh process per run, logs one annotator in and does what the annotation page
does through Django's test client (production settings, DEBUG off, sessions in
Redis): open the next item, one draft edit, submit, `--annotations` times after
20 not timed. It prints the process's CPU milliseconds per request kind and per
annotation. With `--baseline PATH` (e.g. `git worktree add /tmp/base main`) runs
alternate between that checkout's code and this one's, each with its own
annotator, so both meet the same campaign as it fills.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import bench_load  # noqa: E402  (the scratch database, the data and the server's environment are bench_load's)

KINDS = ("open", "draft", "submit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotations", type=int, default=300, help="timed annotations per run")
    parser.add_argument("--rounds", type=int, default=4, help="runs of each checkout")
    parser.add_argument("--baseline", type=Path, help="another checkout whose code runs alternately with this one's")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/granary_bench_requests")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--run", nargs=2, metavar=("CHECKOUT", "USER"), help=argparse.SUPPRESS)  # one timed run
    args = parser.parse_args()
    if args.run:
        _timed_run(Path(args.run[0]), args.run[1], args)
        return
    database = urlsplit(args.database_url).path.lstrip("/")
    if "bench" not in database:
        raise SystemExit(f"refusing to drop and create {database!r}: the scratch database's name must contain 'bench'")
    checkouts = [("this", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    clients = len(checkouts) * args.rounds
    if clients > 20 or args.annotations * clients > 3500:
        raise SystemExit("at most 20 runs and 3,500 annotations in all: the campaign has 4,000 slots")
    with tempfile.TemporaryDirectory(prefix="granary-bench-requests-") as var_dir:
        env = bench_load._server_env(args.database_url, Path(var_dir), args.cache_url)
        _build(env, clients)
        figures: dict[str, list[dict]] = defaultdict(list)
        for run in range(args.rounds):
            for name, checkout in checkouts if run % 2 == 0 else checkouts[::-1]:
                user = f"bench-annotator-{len(sum(figures.values(), [])):02d}"
                result = subprocess.run(
                    [sys.executable, __file__, "--run", str(checkout), user, "--annotations", str(args.annotations)],
                    env={**os.environ, **env}, capture_output=True, text=True, timeout=1800,
                )
                if result.returncode != 0:
                    raise SystemExit(f"the {name} run failed:\n{result.stderr[-3000:]}")
                figures[name].append(json.loads(result.stdout.strip().splitlines()[-1]))
                print(f"round {run + 1} {name:8}  " + "  ".join(f"{k} {figures[name][-1][k]:.2f}" for k in (*KINDS, "total")), flush=True)
    bench_load._drop_database(args.database_url)
    bench_load._clear_cache(args.cache_url)
    _report(figures, args)


def _build(env: dict[str, str], clients: int) -> None:
    """The scratch database, built in a child process with this checkout's code."""
    code = (
        "import sys, django; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/benchmarks']; django.setup(); import bench_load;"
        "from types import SimpleNamespace; from django.core.management import call_command; from django.db import connection;"
        "call_command('migrate', verbosity=0); call_command('collectstatic', '--noinput', verbosity=0);"
        f"bench_load._load_data(SimpleNamespace(examples=1000, per_item=2, shared=0.0, done=0, clients={clients}));"
        "connection.cursor().execute('ANALYZE')"
    )
    bench_load._recreate_database(env["DATABASE_URL"])
    subprocess.run([sys.executable, "-c", code, str(REPO)], env={**os.environ, **env}, check=True, timeout=600)


def _timed_run(checkout: Path, user: str, args) -> None:
    sys.path[:0] = [str(checkout)]
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from annotation.models import Campaign

    records = json.loads((bench_load.DATA / "dev_feedback.json").read_text())
    client = Client(HTTP_HX_REQUEST="true", HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username=user))
    campaign = Campaign.objects.get(name="bench-load")
    url = client.post(f"/annotation/campaigns/{campaign.pk}/start/")["Location"]
    cpu: dict[str, float] = defaultdict(float)

    def timed(kind: str, send):
        started = time.process_time()
        answer = send()
        cpu[kind] += time.process_time() - started
        return answer

    def annotate(url: str) -> str:
        fields, edit, answer = bench_load.page_work(timed("open", lambda: client.get(url)).content.decode(), records)
        assert timed("draft", lambda: client.post(url + "draft/", edit)).status_code == 200
        fields["draft_version"] = str(int(fields["draft_version"]) + 1)
        submitted = timed("submit", lambda: client.post(url + "submit/", {**fields, **answer}))
        following = submitted.get("HX-Redirect", "")
        if submitted.status_code != 200 or "/annotation/work/" not in following:
            raise SystemExit(f"the submit of {url} answered {submitted.status_code} {following!r}")
        return following

    for _ in range(20):  # not timed: imports, first statements, prepared statements
        url = annotate(url)
    cpu.clear()
    for _ in range(args.annotations):
        url = annotate(url)
    per = {kind: 1000 * cpu[kind] / args.annotations for kind in KINDS}
    print(json.dumps({**per, "total": sum(per.values())}))


def _report(figures: dict[str, list[dict]], args) -> None:
    print(f"\nCPU milliseconds per request in one process, {args.annotations} annotations per run, median of {args.rounds} runs (min-max):")
    names = list(figures)
    print(f"{'request':10}" + "".join(f"{name:>22}" for name in names))
    for kind in (*KINDS, "total"):
        cells = []
        for name in names:
            values = [run[kind] for run in figures[name]]
            cells.append(f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"{kind:10}" + "".join(f"{cell:>22}" for cell in cells))
    if len(names) == 2:
        pairs = [this["total"] / base["total"] for this, base in zip(figures["this"], figures["baseline"])]
        print(f"this / baseline per round: {', '.join(f'{ratio:.2f}' for ratio in pairs)}")


if __name__ == "__main__":
    main()
