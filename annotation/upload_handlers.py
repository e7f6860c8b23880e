"""Where an uploaded dataset file goes while it arrives: straight to a file under MEDIA_ROOT, within MAX_UPLOAD_MB.

Django's default handlers keep small files in memory and spool large ones
to the system's temporary folder, and take any size. This handler writes
every upload to `dataset_jobs/incoming/` (the import job then moves it into
its own folder without a copy), and refuses with a 413 as soon as the
request says, or the bytes show, that the file is over the limit.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from annotation.qa.errors import TooLarge
from annotation.selectors.dataset_jobs import jobs_root

# Room for the form's other fields and the multipart boundaries around the file.
FORM_OVERHEAD = 64 * 1024


def max_upload_bytes() -> int:
    return settings.MAX_UPLOAD_MB * 1024 * 1024


def too_large(size: int | None = None) -> TooLarge:
    said = f"The file is {size / 1024 / 1024:.0f} MB; " if size else "The file is too large; "
    return TooLarge(
        said + f"uploads are limited to {settings.MAX_UPLOAD_MB} MB (MAX_UPLOAD_MB). "
        "Import a larger file with `manage.py import_qa_feedback`, or raise the limit.",
        field="file",
    )


class StoredUpload(UploadedFile):
    """An uploaded file kept on disk at `path`; the caller moves or deletes it."""

    def __init__(self, path: Path, name: str, content_type: str, size: int, charset: str | None):
        super().__init__(open(path, "rb"), name, content_type, size, charset)  # noqa: SIM115
        self.path = path

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class DatasetUploadHandler(FileUploadHandler):
    """Writes the upload to a file under MEDIA_ROOT and enforces MAX_UPLOAD_MB while it arrives."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > max_upload_bytes() + FORM_OVERHEAD:
            raise too_large(content_length)
        return None

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        folder = jobs_root() / "incoming"
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, suffix=".json")
        self.path = Path(name)
        self.stream = os.fdopen(handle, "wb")
        self.size = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.size += len(raw_data)
        if self.size > max_upload_bytes():
            self.stream.close()
            self.path.unlink(missing_ok=True)
            raise too_large()
        self.stream.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> StoredUpload:
        self.stream.close()
        return StoredUpload(self.path, self.file_name, self.content_type, file_size, self.charset)

    def upload_interrupted(self) -> None:
        if getattr(self, "stream", None) is not None:
            self.stream.close()
            self.path.unlink(missing_ok=True)
