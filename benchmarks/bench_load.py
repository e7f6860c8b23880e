"""Load: annotators working at once against gunicorn + PostgreSQL, each doing what the annotation page does.

    .venv/bin/python benchmarks/bench_load.py [--clients 20] [--duration 30]
        [--database-url postgres://postgres@127.0.0.1:5432/granary_bench_prod] [--workers 4] [--threads 1]
        [--worker-class sync|gthread]   # gthread keeps each client's connection open between requests
        [--examples 1000] [--per-item 2] [--shared 0] [--done 0]   # --done: a campaign that many examples in
        [--walk-floors]   # with --done: the queue floors walked first, as celery beat does (no request walks from 0)
        [--serve PATH]   # another checkout's code (e.g. `git worktree add /tmp/old main`), for an A/B

Builds a scratch PostgreSQL database (its name must contain "bench"; it is
dropped and created again, and dropped at the end unless --keep), loads the
500 dev examples of the shared dev_feedback.json (repeated to --examples),
creates one campaign (fine-grained feedback and comparison, --per-item
annotators per item; with --done N the slots of its first N examples were
submitted by earlier annotators) and --clients annotators, collects the static files and
starts gunicorn on 127.0.0.1 (production settings, DEBUG off; plain HTTP on
the loopback, so the HTTPS redirect and secure cookies are switched off).

Each client is its own process and its own user. It logs in through the
login form (not timed), then, until --duration seconds have passed, sends
what the browser tab would (its cookies, htmx's headers, the CSRF token)
through http.client, the lightest client at hand, since the clients share
the server's cores: it opens its next item (GET), makes one draft edit the
way the page's htmx does (a span from the shared file's feedback plus the
correction text; the six answers of a comparison), and submits; the
submit's HX-Redirect is the next item. Like a browser, a client keeps its
connection for the next request unless the server closes it (the sync
worker closes each one). A client stops when the campaign has nothing left
for it. Only 127.0.0.1 (or, with a --database-url whose host is a socket
folder written percent-encoded, e.g. postgres://postgres@%2Fvar%2Frun%2Fpostgresql/granary_bench_prod,
PostgreSQL's Unix socket) is contacted; the number of requests is bounded by
--duration and --max-per-client.

Prints requests per kind with p50/p95/p99 milliseconds, acknowledged submits
per second, the machine's load average, and checks that the annotations
stored in the database equal the submits the server acknowledged.
"""

import argparse
import json
import multiprocessing
import os
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GRANARY_SHARED_DIR", REPO.parent / "shared")) / "data" / "qa_feedback"
VENV_BIN = Path(sys.executable).parent
PASSWORD = "bench-load-password-1"
LABEL_STUDIO_PER_S = 8.6  # annotations per second measured for Label Studio on this machine (issue 9)
HTMX = {"HX-Request": "true"}
ANSWERS = {1: "first", 2: "second", 0: "equal"}
# Span types a page can add without a further step (an explanation or a cited sentence).
PLAIN_TYPES = {"Irrelevant", "Incoherent", "Unverifiable"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load after every client has logged in")
    parser.add_argument("--max-per-client", type=int, default=2000, help="annotations at most per client")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--per-item", type=int, default=2, help="annotators per campaign item")
    parser.add_argument("--shared", type=float, default=0.0,
                        help="share of the items every annotator does (the campaign's shared share, for agreement)")
    parser.add_argument("--done", type=int, default=0,
                        help="examples at the head of the queue already done by earlier annotators (a campaign that far in)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread when above 1)")
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default=None,
                        help="gunicorn's worker (default sync, gthread when --threads is above 1); gthread keeps connections open")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/granary_bench_prod")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/14",
                        help="CACHE_URL for the server (sessions read from it); empty: sessions from the database only")
    parser.add_argument("--walk-floors", action="store_true",
                        help="walk the campaign's queue floors before the run, as celery beat does every few minutes"
                             " (annotation.refresh_queue_floors): no request walks from the first example")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--serve", type=Path, default=REPO,
                        help="checkout whose code gunicorn serves (default this one): an A/B against older code on the same schema")
    args = parser.parse_args()
    if not 0 <= args.shared <= 1:
        parser.error("--shared is a share from 0 to 1")
    if not 0 <= args.done < args.examples:
        parser.error(f"--done must be from 0 to below --examples ({args.examples})")

    database = urlsplit(args.database_url).path.lstrip("/")
    if "bench" not in database:
        raise SystemExit(f"refusing to drop and create {database!r}: the scratch database's name must contain 'bench'")
    scratch = tempfile.TemporaryDirectory(prefix="granary-bench-load-")
    env = _server_env(args.database_url, Path(scratch.name), args.cache_url)
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    _recreate_database(args.database_url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    campaign_id, records = _load_data(args)
    with connections["default"].cursor() as cursor:
        # Statistics, as the app's own import leaves them (annotation/services/bulk.py); do not count on autovacuum.
        cursor.execute("ANALYZE")
    walked_s = _walk_floors() if args.walk_floors else None
    connections.close_all()

    load_before = os.getloadavg()
    port = _free_port()
    server = _start_gunicorn(port, args, env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base)
        results = _run_clients(base, campaign_id, records, args, server_pid=server.pid)
        results["load_before"] = load_before
        results["floors_walked_s"] = walked_s
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    _report(results, args)
    ok = _check_rows(results)
    connections.close_all()
    if not args.keep:
        _drop_database(args.database_url)
        _clear_cache(args.cache_url)
    if not ok:
        raise SystemExit("the annotations stored differ from the submits acknowledged")


def _server_env(database_url: str, var_dir: Path, cache_url: str) -> dict[str, str]:
    return {
        "CACHE_URL": cache_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "GRANARY_VAR_DIR": str(var_dir),
        "CELERY_BROKER_URL": "filesystem://",
        # Plain HTTP on the loopback: no TLS proxy in front.
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }


def _admin_connection(database_url: str):
    import psycopg

    parts = urlsplit(database_url)
    return psycopg.connect(
        host=_socket_folder(database_url) or parts.hostname, port=parts.port or 5432, user=parts.username or "postgres", password=parts.password,
        dbname="postgres", autocommit=True,
    )


def _recreate_database(database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    with _admin_connection(database_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    with _admin_connection(database_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clear_cache(cache_url: str) -> None:
    """Remove the sessions the run left in its cache (only Granary's keys)."""
    if cache_url:
        import redis

        client = redis.Redis.from_url(cache_url)
        for key in client.scan_iter("granary:*"):
            client.delete(key)


def _load_data(args) -> tuple[int, list[dict]]:
    from django.contrib.auth.models import Group, User

    from annotation.models import Campaign, Dataset, Example, Passage, Response

    records = json.loads((DATA / "dev_feedback.json").read_text())
    dataset = Dataset.objects.create(name="bench-load")
    examples = Example.objects.bulk_create(
        Example(dataset=dataset, split="dev", position=i, question=f"{records[i % len(records)]['question']} [{i}]",
                gold=records[i % len(records)]["gold"])
        for i in range(args.examples)
    )
    Passage.objects.bulk_create(
        Passage(example=example, number=n, title=p[0], sentences=p[1:])
        for example in examples
        for n, p in enumerate(records[example.position % len(records)]["passages"], start=1)
    )
    Response.objects.bulk_create(
        Response(example=example, number=n, text=records[example.position % len(records)][f"prediction {n}"])
        for example in examples
        for n in range(1, 5)
    )
    group = Group.objects.get_or_create(name="annotator")[0]
    users = []
    for i in range(args.clients):
        user = User.objects.create_user(f"bench-annotator-{i:02d}", password=PASSWORD)
        user.groups.add(group)
        users.append(user)
    campaign = Campaign.objects.create(name="bench-load", dataset=dataset, split="dev", task="both", annotators_per_item=args.per_item,
                                       shared_share=args.shared)
    campaign.annotators.set(users)
    if args.done:
        _mark_done(campaign, examples[:args.done])
    return campaign.pk, records


def _mark_done(campaign, examples) -> None:
    """Every slot of both kinds on `examples` submitted by earlier annotators (not the clients); a shared item has
    a slot for everyone on the team, as the queue counts them."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from annotation.models import Assignment, AssignmentKind, AssignmentStatus
    from annotation.selectors.campaigns import shared_item_ids, team_size

    team = team_size(campaign)
    shared = {kind: shared_item_ids(campaign, kind) for kind in AssignmentKind.values}
    slots = {kind: {e.pk: team if e.pk in shared[kind] else campaign.annotators_per_item for e in examples}
             for kind in AssignmentKind.values}
    earlier = [User.objects.create_user(f"bench-earlier-{slot}") for slot in range(max(team, campaign.annotators_per_item))]
    now = timezone.now()
    Assignment.objects.bulk_create(
        (Assignment(campaign=campaign, example=example, kind=kind, slot=slot, annotator=earlier[slot],
                    status=AssignmentStatus.SUBMITTED, submitted_at=now)
         for example in examples for kind in AssignmentKind.values for slot in range(slots[kind][example.pk])),
        batch_size=5000,
    )


def _walk_floors() -> float:
    """The periodic task's work, in this process (its cache is the server's): seconds it took."""
    from annotation.services.campaigns import queue_floors_refresh

    started = time.perf_counter()
    if queue_floors_refresh() != 1:
        raise SystemExit("the floor walk found no campaign at work: is --cache-url empty, or nothing done (--done 0)?")
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_gunicorn(port: int, args, env: dict[str, str]) -> subprocess.Popen:
    command = [
        str(VENV_BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
        "--log-level", "warning",
    ]
    if worker_class(args) == "gthread":
        command += ["--worker-class", "gthread", "--threads", str(args.threads)]
    return subprocess.Popen(command, cwd=args.serve, env={**os.environ, **env})


def _socket_folder(database_url: str) -> str | None:
    """The folder of PostgreSQL's Unix socket when the URL's host is one, written percent-encoded
    (postgres://postgres@%2Fvar%2Frun%2Fpostgresql/db); None for a host name."""
    host = urlsplit(database_url).netloc.rpartition("@")[2].rsplit(":", 1)[0]
    return unquote(host) if "%2F" in host.upper() else None


def _database_host(database_url: str) -> str:
    folder = _socket_folder(database_url)
    return f"the socket in {folder}" if folder else urlsplit(database_url).netloc.rpartition("@")[2]


def worker_class(args) -> str:
    return args.worker_class or ("gthread" if args.threads > 1 else "sync")


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live children so far (gunicorn's master and workers)."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _postgres_cpu_s(database_url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the benchmark's database (the server's connections)."""
    import psutil

    name = urlsplit(database_url).path.lstrip("/")
    with _admin_connection(database_url) as conn:
        pids = [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name])]
    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        seconds[pid] = times.user + times.system
    return seconds


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _wait_until_up(base: str) -> None:
    import requests

    for _ in range(120):
        try:
            if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not answer /healthz within a minute")


# --- the clients ------------------------------------------------------------------------------


def _run_clients(base: str, campaign_id: int, records: list[dict], args, *, server_pid: int) -> dict:
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(args.clients + 1)
    queue = context.Queue()
    start_at = context.Value("d", 0.0)
    procs = [
        context.Process(target=_client, args=(i, base, campaign_id, records, args, ready, start_at, queue))
        for i in range(args.clients)
    ]
    for proc in procs:
        proc.start()
    ready.wait()  # every client has logged in
    start_at.value = time.time()
    server_cpu = _cpu_s(server_pid)
    postgres_cpu = _postgres_cpu_s(args.database_url)
    ready.wait()
    results = [queue.get(timeout=args.duration + 300) for _ in procs]
    server_cpu = _cpu_s(server_pid) - server_cpu
    # Backends that connected while timed count whole; one that closed while timed is missed (connections persist).
    postgres_cpu = sum(cpu - postgres_cpu.get(pid, 0.0) for pid, cpu in _postgres_cpu_s(args.database_url).items())
    for proc in procs:
        proc.join(timeout=30)
    merged: dict = {"timings": defaultdict(list), "acknowledged": 0, "errors": [], "users": [], "elapsed": 0.0, "login_ms": []}
    for result in results:
        for kind, values in result["timings"].items():
            merged["timings"][kind].extend(values)
        merged["acknowledged"] += result["acknowledged"]
        merged["errors"] += result["errors"]
        merged["users"].append(result["user"])
        merged["elapsed"] = max(merged["elapsed"], result["elapsed"])
        merged["login_ms"].append(result["login_ms"])
    merged["load_after"] = os.getloadavg()
    merged["server_cpu_s"] = server_cpu
    merged["postgres_cpu_s"] = postgres_cpu
    merged["client_cpu_s"] = sum(result["cpu_s"] for result in results)
    return merged


def _client(index, base, campaign_id, records, args, ready, start_at, queue) -> None:
    import requests

    user = f"bench-annotator-{index:02d}"
    timings: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    began = time.perf_counter()
    # The login (not timed) goes through the login form with requests; the timed loop uses the lighter
    # http.client, so that the clients, which share the server's cores, take as little of them as they can.
    with requests.Session() as login:
        page = login.get(f"{base}/accounts/login/")
        login.post(f"{base}/accounts/login/", data={"username": user, "password": PASSWORD,
                                                    "csrfmiddlewaretoken": _csrf(page.text)}, allow_redirects=False)
        cookies = {name: value for name, value in login.cookies.items()}
    login_ms = (time.perf_counter() - began) * 1000
    http = _Browser(base, cookies)
    ready.wait()
    ready.wait()
    deadline = start_at.value + args.duration
    cpu_at_start = _own_cpu_s()

    def timed(kind: str, method: str, path: str, data: dict | None = None) -> "_Answer":
        t0 = time.perf_counter()
        answer = http.request(method, path, data)
        timings[kind].append((time.perf_counter() - t0) * 1000)
        if answer.status >= 400:
            errors.append(f"{kind} {path} -> {answer.status}: {answer.text[:200]}")
        return answer

    acknowledged = 0
    url = timed("start", "POST", f"/annotation/campaigns/{campaign_id}/start/").headers.get("location", "")
    while time.time() < deadline and acknowledged < args.max_per_client and "/annotation/work/" in url and len(errors) < 5:
        item = urlsplit(url).path
        page = timed("open item", "GET", item)
        if page.status != 200 or 'name="submit_token"' not in page.text:
            if page.status < 400:
                errors.append(f"open item {item} -> {page.status} {page.headers.get('location', '')}: not an item page")
            break
        fields, edit, answer = page_work(page.text, records)
        timed("draft edit", "POST", item + "draft/", edit)
        fields["draft_version"] = str(int(fields["draft_version"]) + 1)
        response = timed("submit", "POST", item + "submit/", {**fields, **answer})
        if response.status == 200 and response.headers.get("hx-redirect"):
            acknowledged += 1
            url = response.headers["hx-redirect"]
        else:
            break
    http.close()
    elapsed = time.time() - start_at.value
    queue.put({"timings": dict(timings), "acknowledged": acknowledged, "errors": errors, "user": user, "elapsed": elapsed,
               "login_ms": login_ms, "cpu_s": _own_cpu_s() - cpu_at_start})


def page_work(html: str, records: list[dict]) -> tuple[dict, dict, dict]:
    """What the item page at hand sends: its hidden fields, one draft edit (a span from the shared file's feedback
    plus the correction text; the six answers of a comparison) and the submit's answer."""
    fields = {name: _hidden(html, name) for name in ("version", "submit_token", "draft_version")}
    record = records[(int(re.search(r"· example (\d+)", html).group(1)) - 1) % len(records)]
    if 'id="fg-form"' in html:
        feedback = record["feedback"]
        answer = {"corrected-prediction": feedback["corrected-prediction"]}
        edit = {**answer, "draft_version": fields["draft_version"]}
        span = next((e for e in feedback["errors"] if e["error type"] in PLAIN_TYPES), None)
        if span:
            edit.update(op="add_span", start=span["start"], end=span["end"], type=span["error type"])
    else:
        answer = {f"pair-{i}": ANSWERS[v] for i, v in enumerate(record["preference"])}
        edit = {**answer, "draft_version": fields["draft_version"]}
    return fields, edit, answer


class _Answer:
    def __init__(self, status: int, headers: dict[str, str], text: str):
        self.status, self.headers, self.text = status, headers, text


class _Browser:
    """What a logged-in browser tab sends: its cookies, htmx's headers and the CSRF token, form-encoded bodies;
    cookies the server sets are kept. Like a browser it keeps its connection open for the next request unless
    the server closes it (gunicorn's sync workers close each one; the threaded worker keeps it a while)."""

    def __init__(self, base: str, cookies: dict[str, str]):
        parts = urlsplit(base)
        self.host, self.port, self.cookies = parts.hostname, parts.port, dict(cookies)
        self.connection = None

    def request(self, method: str, path: str, data: dict | None = None) -> _Answer:
        import http.client
        from urllib.parse import urlencode

        headers = {**HTMX, "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   "X-CSRFToken": self.cookies.get("csrftoken", ""), "Referer": f"http://{self.host}:{self.port}{path}"}
        body = None
        if data is not None:
            body = urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        reused = self.connection is not None
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            text = response.read().decode()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.close()
            if not reused:
                raise
            return self.request(method, path, data)  # the server closed a kept connection meanwhile: as a browser, retry once
        if response.will_close:
            self.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return _Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, text)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def _hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


# --- the figures ------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(results: dict, args) -> None:
    timings = results["timings"]
    if args.serve.resolve() != REPO:
        print(f"serving the code in {args.serve}")
    if args.shared:
        print(f"{args.shared:.0%} of the items are shared: every annotator does them")
    if args.done:
        print(f"the campaign ({args.examples} examples) starts {args.done} examples in: their slots were submitted before the run")
    if results.get("floors_walked_s") is not None:
        print(f"queue floors walked before the run, as celery beat does: {results['floors_walked_s']:.2f} s")
    print(f"{args.clients} annotators for {args.duration:.0f} s against gunicorn ({args.workers} {worker_class(args)} workers x "
          f"{args.threads} threads) + PostgreSQL at {_database_host(args.database_url)}; sessions {'cached in ' + args.cache_url if args.cache_url else 'in the database'}; "
          f"{os.cpu_count()} CPUs")
    print(f"load average (1 min) before the server started: {results['load_before'][0]:.1f}, at the end: "
          f"{results['load_after'][0]:.1f} (anything above the benchmark's own processes competes for the same cores)")
    print(f"logins (not timed below): median {statistics.median(results['login_ms']):.0f} ms")
    print()
    print(f"{'request':<12} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    every = []
    for kind in ("start", "open item", "draft edit", "submit"):
        values = timings.get(kind, [])
        every += values
        if values:
            print(f"{kind:<12} {len(values):>7} {_percentile(values, .5):>8.1f} {_percentile(values, .95):>8.1f} "
                  f"{_percentile(values, .99):>8.1f} {max(values):>8.1f}")
    print(f"{'all':<12} {len(every):>7} {_percentile(every, .5):>8.1f} {_percentile(every, .95):>8.1f} "
          f"{_percentile(every, .99):>8.1f} {max(every):>8.1f}")
    rate = results["acknowledged"] / results["elapsed"]
    print()
    print(f"acknowledged submits: {results['acknowledged']} in {results['elapsed']:.1f} s = {rate:.1f} annotations/s "
          f"({rate / LABEL_STUDIO_PER_S:.1f}x Label Studio's {LABEL_STUDIO_PER_S}/s; aim: 10x with p95 under 100 ms)")
    print(f"requests/s: {len(every) / results['elapsed']:.1f}; p95 of all requests {_percentile(every, .95):.1f} ms")
    per_annotation = 1000 * results["server_cpu_s"] / max(1, results["acknowledged"])
    cores = os.cpu_count() or 1
    print(f"CPU while timed: gunicorn {results['server_cpu_s']:.1f} s = {per_annotation:.1f} ms per annotation (so at most "
          f"{1000 * cores / per_annotation if per_annotation else 0:.0f} annotations/s with all {cores} cores to itself, "
          f"PostgreSQL not counted); the {args.clients} clients {results['client_cpu_s']:.1f} s = "
          f"{1000 * results['client_cpu_s'] / max(1, results['acknowledged']):.1f} ms per annotation, on the same cores")
    postgres = 1000 * results["postgres_cpu_s"] / max(1, results["acknowledged"])
    print(f"CPU while timed: PostgreSQL backends {results['postgres_cpu_s']:.1f} s = {postgres:.1f} ms per annotation; "
          f"gunicorn + PostgreSQL {per_annotation + postgres:.1f} ms per annotation")
    if results["errors"]:
        print(f"{len(results['errors'])} error answers, first: {results['errors'][0]}")


def _check_rows(results: dict) -> bool:
    from annotation.models import Comparison, FeedbackStatus, FineGrainedFeedback

    users = results["users"]
    stored = (
        FineGrainedFeedback.objects.filter(annotator__username__in=users, status=FeedbackStatus.SUBMITTED).count()
        + Comparison.objects.filter(annotator__username__in=users, status=FeedbackStatus.SUBMITTED).count()
    )
    same = stored == results["acknowledged"]
    print(f"stored annotations: {stored}; acknowledged submits: {results['acknowledged']} -> {'OK' if same else 'MISMATCH'}")
    return same


if __name__ == "__main__":
    main()
