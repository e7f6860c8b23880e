"""A missing node_modules is refused loudly: a system check at start-up and a usage error at test collection."""

import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from config.checks import check_frontend_packages
from config.frontend import FRONTEND_PACKAGES, frontend_static_dirs, missing_frontend_files
from tests.conftest import REPO_ROOT, frontend_problem


@pytest.fixture
def repo_without_chartjs(tmp_path):
    """A repository root whose node_modules has htmx but not Chart.js."""
    folder, name = FRONTEND_PACKAGES["vendor/htmx"]
    (tmp_path / "node_modules" / folder).mkdir(parents=True)
    shutil.copy(REPO_ROOT / "node_modules" / folder / name, tmp_path / "node_modules" / folder / name)
    return tmp_path


def test_the_installed_packages_are_served_and_none_is_missing():
    assert missing_frontend_files(REPO_ROOT) == []
    assert [prefix for prefix, _ in frontend_static_dirs(REPO_ROOT)] == list(FRONTEND_PACKAGES)


def test_development_refuses_to_start_without_a_package(settings, repo_without_chartjs):
    settings.BASE_DIR = repo_without_chartjs
    settings.DEBUG = True
    [problem] = check_frontend_packages()
    assert problem.id == "granary.E001" and "node_modules/chart.js/dist/chart.umd.min.js missing" in problem.msg
    assert "npm ci" in problem.hint
    # runserver and migrate run the checks first and stop on an error.
    with pytest.raises(SystemCheckError, match="granary.E001"):
        call_command("check")


def test_production_warns_as_the_files_may_be_collected_elsewhere(settings, repo_without_chartjs):
    settings.BASE_DIR = repo_without_chartjs
    settings.DEBUG = False
    [problem] = check_frontend_packages()
    assert problem.id == "granary.W001"


class _Item:
    def __init__(self, *markers):
        self.markers = markers

    def get_closest_marker(self, name):
        return name if name in self.markers else None


def test_collecting_browser_tests_without_the_packages_is_a_usage_error(repo_without_chartjs):
    problem = frontend_problem([_Item(), _Item("browser")], repo_without_chartjs)
    assert problem.startswith("node_modules/chart.js/dist/chart.umd.min.js missing") and "npm ci" in problem
    assert frontend_problem([_Item(), _Item("slow")], repo_without_chartjs) is None  # nothing here loads a page
    assert frontend_problem([_Item("browser")]) is None  # this checkout has them
