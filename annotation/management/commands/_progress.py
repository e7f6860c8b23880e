"""Command-line progress bars for imports (bytes of the file read) and exports (examples written)."""

from typing import TextIO

from tqdm import tqdm


class ImportBar:
    """One tqdm bar over the bytes of the file, with the examples written so far; on stderr."""

    def __init__(self, stream: TextIO, *, disable: bool = False):
        self.bar = tqdm(desc="importing", unit="B", unit_scale=True, file=stream, disable=disable, leave=True)

    def __call__(self, progress) -> None:
        if progress.bytes_total is not None and self.bar.total != progress.bytes_total:
            self.bar.total = progress.bytes_total
        self.bar.set_postfix_str(f"{progress.examples} examples", refresh=False)
        self.bar.update(progress.bytes_read - self.bar.n)

    def __enter__(self) -> "ImportBar":
        return self

    def __exit__(self, *exc_info) -> None:
        self.bar.close()


class ExportBar:
    """One tqdm bar over the examples written; on stderr."""

    def __init__(self, stream: TextIO, *, disable: bool = False):
        self.bar = tqdm(desc="exporting", unit="ex", file=stream, disable=disable, leave=True)

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> "ExportBar":
        return self

    def __exit__(self, *exc_info) -> None:
        self.bar.close()


def raw_stream(wrapper) -> TextIO:
    # A command's self.stderr adds a newline to every write, which would break tqdm's
    # carriage-return redraws; the bars write to the stream underneath.
    return getattr(wrapper, "_out", wrapper)
