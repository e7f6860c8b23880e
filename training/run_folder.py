"""A run's folder under MODEL_ROOT and the files the worker keeps in it.

Shared by the researcher's side (services, views: the reaper's log tail, the
log download) and the worker's side (supervisor), so neither imports the other.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
import zipfile
from pathlib import Path

from django.conf import settings

LOG_FILE = "log.txt"
EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
LOG_TAIL_LINES = 60
# The checkpoint name every trainer (SFT, reward models, PPO) gives its newest resumable state.
LAST_CHECKPOINT = "last"


def run_output_path(run) -> Path:
    """The run's folder: `MODEL_ROOT/runs/<id>-<kind>/` (stored relative to MODEL_ROOT)."""
    return Path(settings.MODEL_ROOT) / run.output_dir


def tail_lines(path: Path, n: int = LOG_TAIL_LINES, *, max_bytes: int = 256 * 1024) -> str:
    """The last `n` lines of a text file (reading at most `max_bytes` from its end)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    # Progress bars redraw with carriage returns; keep only what a terminal would show last.
    lines = [line.rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]
    return "\n".join(lines[-n:])


# --- artifact zips -------------------------------------------------------------------------
# A folder artifact is zipped in the background into the run's DOWNLOADS folder: `<zip>.part` while it
# is written, renamed to `<zip>` when complete, `<zip>.error` with the reason when it failed.
DOWNLOADS = "downloads"
# A `.part` zip that has not grown for this long belongs to a worker that died; it may be asked for again.
ZIP_STALE_S = 15 * 60
_COPY_CHUNK = 1024 * 1024


def zip_paths(run, artifact) -> tuple[Path, Path, Path]:
    """(zip, part, error) for one artifact of a run."""
    name = f"run{run.pk}-{artifact.pk}-{artifact.name.replace('/', '_')}.zip"
    folder = run_output_path(run) / DOWNLOADS
    zip_path = folder / name
    return zip_path, zip_path.with_name(name + ".part"), zip_path.with_name(name + ".error")


def zip_folder(source: Path, out, *, arc_root: str, skip: Path | None = None) -> tuple[int, int]:
    """Write the regular files under `source` into the open binary file `out`; returns (files, skipped).

    Symbolic links are never followed, to files or to folders, and neither is
    anything that is not a regular file (a FIFO would block): walking with
    directory descriptors and opening with O_NOFOLLOW, a link swapped in
    mid-way cannot lead outside `source` either. `skip` is a folder left out
    (the downloads folder, when a run's whole folder is zipped).
    """
    files = skipped = 0
    skip_real = os.path.realpath(skip) if skip else None
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for top, dirs, names, dir_fd in os.fwalk(source, follow_symlinks=False):
            relative = os.path.relpath(top, source)
            dirs.sort()
            if skip_real:
                dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(top, d)) != skip_real]
            for name in sorted(names):
                arcname = "/".join(p for p in (arc_root, relative, name) if p and p != ".")
                if _add_file(archive, dir_fd, name, arcname):
                    files += 1
                else:
                    skipped += 1
            # Links to folders come in `dirs`; fwalk does not enter them and they add nothing.
            skipped += sum(1 for d in dirs if os.path.islink(os.path.join(top, d)))
    return files, skipped


def _add_file(archive: zipfile.ZipFile, dir_fd: int, name: str, arcname: str) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return False  # a symbolic link (ELOOP), or gone
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return False
        entry = zipfile.ZipInfo(arcname, date_time=time.localtime(max(info.st_mtime, 315532800))[:6])
        entry.compress_type = zipfile.ZIP_DEFLATED
        entry.external_attr = (stat.S_IMODE(info.st_mode) | stat.S_IFREG) << 16
        with archive.open(entry, "w", force_zip64=True) as target:
            shutil.copyfileobj(handle, target, _COPY_CHUNK)
    return True
