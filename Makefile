# Granary: `make run` sets up and starts everything; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

# pytest-xdist workers for the test targets: one per core by default; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= auto
# A file's tests stay on one worker, so module-scoped fixtures (a Celery worker, a built file) are made once.
XDIST := -n $(TEST_WORKERS) --dist loadfile

WEB_CONCURRENCY ?= 3

.PHONY: run serve setup test test-fast worker worker-gpu web bench clean

# Re-install only when the lock files change.
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

setup: $(VENV)/.installed node_modules/.installed

# Command 1: a fresh machine to a running app with demo data (SQLite + filesystem broker by default).
# DEBUG=1 for the demo only: development secret key, plain HTTP, static files from the source folders.
run: export DEBUG = 1
run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "Starting Celery workers (default with the beat scheduler; gpu) and the web server at http://$(HOST):$(PORT)/"
	@trap 'kill 0' EXIT INT TERM; \
	$(VENV)/bin/celery -A config worker -Q default -B -c 1 --pool=solo -n default@%h --loglevel=INFO > var/worker-default.log 2>&1 & \
	$(VENV)/bin/celery -A config worker -Q gpu -c 1 --pool=solo -n gpu@%h --loglevel=INFO > var/worker-gpu.log 2>&1 & \
	$(PY) manage.py runserver $(HOST):$(PORT)

# The production layout on one machine (README "Production"): gunicorn, a `default` worker with the beat
# scheduler, a `gpu` worker. Needs SECRET_KEY and ALLOWED_HOSTS (DEBUG stays off); TLS ends at a proxy in front.
serve: setup
	$(PY) manage.py check --deploy --fail-level WARNING
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	@trap 'kill 0' EXIT INT TERM; \
	$(VENV)/bin/celery -A config worker -Q default -B -c 2 -n default@%h --loglevel=INFO & \
	$(VENV)/bin/celery -A config worker -Q gpu -c 1 --pool=solo -n gpu@%h --loglevel=INFO & \
	$(VENV)/bin/gunicorn config.wsgi --bind $(HOST):$(PORT) --workers $(WEB_CONCURRENCY) --access-logfile -

web: export DEBUG = 1
web: setup
	$(PY) manage.py runserver $(HOST):$(PORT)

# Production: one or more per CPU node; exactly one of them (or a `celery beat`) adds -B for the periodic reaper.
worker: setup
	$(VENV)/bin/celery -A config worker -Q default -c 2 --loglevel=INFO

# One per GPU node: training runs use every GPU of the node through accelerate.
worker-gpu: setup
	$(VENV)/bin/celery -A config worker -Q gpu -c 1 --pool=solo --loglevel=INFO

# Debian's chromium drives the browser tests (never a downloaded browser build).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium missing: run 'sudo apt-get install -y chromium'" >&2; exit 1; fi

# Command 2: the whole test suite, browser and model-training tests included (what CI runs).
test: setup /usr/bin/chromium
	$(VENV)/bin/pytest $(XDIST)

# Everything but the `slow` (training, real Celery workers) and `browser` tests: under a minute.
test-fast: setup
	$(VENV)/bin/pytest $(XDIST) -m "not slow and not browser"

# The quick benchmarks; bench_rm_minilm.py and learning_check.py train models and take minutes.
bench: setup
	for f in bench_import bench_rm_data bench_annotate; do echo "== $$f"; $(PY) benchmarks/$$f.py || exit 1; done

clean:
	rm -rf var test-output .pytest_cache
