"""The sentencizer loads without torch, and `build_rm_data` imports only what it needs, so it starts quickly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_sentencizer_loads_without_importing_torch_and_torch_stays_importable():
    out = _run(
        "import sys; from annotation.qa.text import load_splitter, sentences; "
        "nlp, name = load_splitter('sentencizer'); "
        "print(name, 'torch' in sys.modules, [s.text for s in sentences(nlp, 'One. Two!')]); "
        "import torch; print(torch.tensor([1]).sum().item())"
    )
    assert out.split("\n") == ["sentencizer False ['One.', 'Two!']", "1"]


def test_a_process_that_imported_torch_first_keeps_it_for_spacy():
    out = _run(
        "import torch; from annotation.qa.text import load_splitter; load_splitter('sentencizer'); "
        "import thinc.compat; print(thinc.compat.has_torch)"
    )
    assert out == "True"


# What `manage.py build_rm_data` has no use for, and why each was imported before.
NOT_NEEDED_BY_BUILD_RM_DATA = (
    "torch",  # through spaCy's thinc (3 of the 4.3 s the command took)
    "spacy.cli",  # spaCy's command line (typer, requests, weasel), for the one name spacy.info
    "requests",
    "celery",  # config imported the Celery app at start-up; the command enqueues nothing
    "annotation.tasks",  # annotation's AppConfig imported the tasks, and with them every service
    "annotation.services.datasets",
    "annotation.services.campaigns",
    "training.kinds",  # TrainingRun.kind's choices, and with them every run kind's pydantic config class
    "training.ml.configs",
)


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory):
    """The environment of an SQLite database holding the demo feedback as demo/dev, made in a process of its own."""
    folder = tmp_path_factory.mktemp("rm-imports")
    env = {**os.environ, "DEBUG": "1", "GRANARY_VAR_DIR": str(folder), "DATABASE_URL": f"sqlite:///{folder}/db.sqlite3"}
    prepare = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup(); "
        "from django.core.management import call_command; "
        "call_command('migrate', verbosity=0); "
        "call_command('import_qa_feedback', 'demo/qa_feedback_demo.json', dataset='demo', split='dev', verbosity=0)"
    )
    done = subprocess.run([sys.executable, "-c", prepare], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return env


def test_the_build_rm_data_command_imports_neither_torch_nor_what_else_it_does_not_need(demo_database, tmp_path):
    # A fresh process, as `manage.py build_rm_data` runs: only the command's own imports count.
    build = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
        "from django.core.management import execute_from_command_line; "
        f"execute_from_command_line(['manage.py', 'build_rm_data', '--dataset', 'demo', '--split', 'dev', "
        f"'--out', {str(tmp_path / 'rm')!r}, '--splitter', 'sentencizer']); "
        f"print('imported:', sorted(name for name in {NOT_NEEDED_BY_BUILD_RM_DATA!r} if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", build], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=demo_database
    )
    assert result.returncode == 0, result.stderr
    assert "Sentence splitter: sentencizer" in result.stdout
    assert result.stdout.strip().endswith("imported: []"), result.stdout
    assert (tmp_path / "rm" / "NF-ERR_subsentence" / "dev.json").is_file()


def test_once_the_tokenizer_rules_are_cached_the_command_does_not_import_spacy(demo_database, tmp_path):
    # The first build exports spaCy's tokenizer rules into SPLITTER_CACHE_DIR; later ones split from them.
    env = {**demo_database, "SPLITTER_CACHE_DIR": str(tmp_path / "cache")}
    build = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
        "from django.core.management import execute_from_command_line; "
        f"execute_from_command_line(['manage.py', 'build_rm_data', '--dataset', 'demo', '--split', 'dev', "
        f"'--out', sys.argv[1], '--splitter', 'sentencizer', '-v0']); "
        "print('spacy' in sys.modules)"
    )
    printed = []
    for run in ("first", "second"):
        result = subprocess.run(
            [sys.executable, "-c", build, str(tmp_path / run)], cwd=REPO_ROOT, capture_output=True, text=True,
            timeout=300, env=env,
        )
        assert result.returncode == 0, result.stderr
        printed.append(result.stdout.strip())
    assert printed == ["True", "False"]
    for name in ("NF-ERR_subsentence", "F-ERR_sentence", "COMP_sequence"):
        first = (tmp_path / "first" / name / "dev.json").read_bytes()
        assert first and first == (tmp_path / "second" / name / "dev.json").read_bytes()


def test_a_fresh_process_that_requests_a_build_runs_it_in_eager_mode(demo_database):
    # Tasks are no longer imported at start-up: enqueueing must load them, or eager mode would send the
    # build to the broker by name and leave it queued.
    request = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup(); "
        "from annotation.services.rm_files import rm_data_build_request; "
        "build = rm_data_build_request(dataset='demo', split='dev', splitter='sentencizer'); "
        "build.refresh_from_db(); print(build.status, build.progress_done == build.progress_total > 0)"
    )
    env = {**demo_database, "CELERY_TASK_ALWAYS_EAGER": "1"}
    result = subprocess.run([sys.executable, "-c", request], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "succeeded True", result.stdout


def test_spacy_without_its_command_line_still_has_spacy_info_and_spacy_cli():
    out = _run(
        "import sys; from annotation.qa.text import load_splitter; load_splitter('sentencizer'); "
        "print('spacy.cli' in sys.modules); import spacy; "
        "print(spacy.info(silent=True)['spacy_version'] == spacy.__version__); "
        "import spacy.cli; from spacy.cli.info import info; print(callable(spacy.cli.download), info is spacy.cli.info)"
    )
    assert out.split("\n") == ["False", "True", "True True"]
