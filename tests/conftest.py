import os
from pathlib import Path

import pytest

# Tests never reach a model hub or wandb's servers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Playwright's sync API runs an event loop; Django must still allow the ORM in live-server tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Under pytest-xdist, share the cores among the workers: torch's threads (and those of the trainers the
# tests start) would otherwise spin against each other's. Set before anything imports torch.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(_threads))

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("GRANARY_SHARED_DIR", REPO_ROOT.parent / "shared"))
QA_FEEDBACK_DIR = SHARED_DIR / "data" / "qa_feedback"
TEST_OUTPUT_DIR = Path(os.environ.get("GRANARY_TEST_OUTPUT", REPO_ROOT / "test-output"))


def frontend_problem(items, base_dir: Path = REPO_ROOT) -> str | None:
    """Why the browser tests among `items` cannot run (htmx or Chart.js not installed), or None."""
    from config.frontend import INSTALL_HINT, missing_frontend_files, missing_frontend_message

    if not any(item.get_closest_marker("browser") for item in items):
        return None
    missing = missing_frontend_files(base_dir)
    return f"{missing_frontend_message(missing)} {INSTALL_HINT}" if missing else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    # After -m/-k deselection: a run without browser tests needs no node_modules. Without this, pages
    # load without htmx and the browser tests time out with no hint why.
    problem = frontend_problem(items)
    if problem:
        raise pytest.UsageError(f"cannot run the browser tests: {problem}")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED_DIR


@pytest.fixture(scope="session")
def qa_feedback_dir() -> Path:
    if not QA_FEEDBACK_DIR.is_dir():
        pytest.fail(f"shared data not found at {QA_FEEDBACK_DIR}; set GRANARY_SHARED_DIR")
    return QA_FEEDBACK_DIR


@pytest.fixture(scope="session")
def test_output_dir() -> Path:
    TEST_OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return TEST_OUTPUT_DIR


@pytest.fixture(autouse=True)
def _isolated_model_root(settings, tmp_path):
    """Every test writes models, runs and built files under its own folder."""
    # Password hashing is deliberately slow; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MODEL_ROOT = tmp_path / "models"
    settings.MODEL_ROOT.mkdir()
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MODEL_ROOT


@pytest.fixture
def make_user(db):
    from django.contrib.auth.models import Group, User

    def _make(username: str, *, role: str | None = None, password: str = "pw-for-tests-1", **extra) -> User:
        user = User.objects.create_user(username=username, password=password, **extra)
        if role:
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
        return user

    return _make


@pytest.fixture
def researcher(make_user):
    return make_user("rita", role="researcher")


@pytest.fixture
def annotator(make_user):
    return make_user("anna", role="annotator")


@pytest.fixture
def researcher_client(client, researcher):
    client.force_login(researcher)
    return client


@pytest.fixture
def annotator_client(client, annotator):
    client.force_login(annotator)
    return client


@pytest.fixture
def eager_celery():
    """Celery tasks run in the calling process, as soon as they are sent (the app is yielded)."""
    from config.celery import app

    was = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = was
