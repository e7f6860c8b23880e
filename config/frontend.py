"""The front-end packages the pages load, installed from npm (package.json) into node_modules.

Staticfiles serves each package's built folder under a prefix. A missing
folder must not pass silently (pages would load without htmx or Chart.js and
look half-alive): `config.checks` reports it when Django starts, as an error
in development, and the test suite's conftest refuses to run browser tests
without it.
"""

from __future__ import annotations

from pathlib import Path

# static prefix -> (the package's built folder under node_modules, a file the pages load from it)
FRONTEND_PACKAGES = {
    "vendor/htmx": ("htmx.org/dist", "htmx.min.js"),
    "vendor/chartjs": ("chart.js/dist", "chart.umd.min.js"),
}
INSTALL_HINT = "Run `npm ci` in the repository root (`make setup` does it, from package-lock.json)."


def frontend_static_dirs(base_dir: Path) -> list[tuple[str, Path]]:
    """STATICFILES_DIRS entries for the packages that are installed."""
    folders = [(prefix, base_dir / "node_modules" / folder) for prefix, (folder, _) in FRONTEND_PACKAGES.items()]
    return [(prefix, folder) for prefix, folder in folders if folder.is_dir()]


def missing_frontend_files(base_dir: Path) -> list[str]:
    """The files the pages load that are not installed, as paths relative to `base_dir`."""
    wanted = [Path("node_modules") / folder / name for folder, name in FRONTEND_PACKAGES.values()]
    return [str(path) for path in wanted if not (base_dir / path).is_file()]


def missing_frontend_message(missing: list[str]) -> str:
    return f"{', '.join(missing)} missing: pages would load without htmx or Chart.js."
