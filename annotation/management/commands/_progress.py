"""Command-line progress bars for the stages a service reports as (stage, done, total)."""

from typing import TextIO

from tqdm import tqdm

LABELS = {"validate": "validating", "write": "writing", "export": "exporting"}


class StageBars:
    """One tqdm bar per stage, on the given stream (stderr, so stdout stays clean for summaries)."""

    def __init__(self, stream: TextIO, *, disable: bool = False):
        self.stream = stream
        self.disable = disable
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            # Stages run one after another; finish the earlier bars so the new one draws below them.
            for earlier in self.bars.values():
                earlier.close()
            bar = self.bars[stage] = tqdm(
                total=total,
                desc=LABELS.get(stage, stage),
                unit="ex",
                file=self.stream,
                disable=self.disable,
                leave=True,
            )
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()

    def __enter__(self) -> "StageBars":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def raw_stream(wrapper) -> TextIO:
    # A command's self.stderr adds a newline to every write, which would break tqdm's
    # carriage-return redraws; the bars write to the stream underneath.
    return getattr(wrapper, "_out", wrapper)
