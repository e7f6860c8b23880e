"""Token ids -> characters: windowed decoding (`token_char_spans`) beside decoding every prefix, per answer length.

Prints, for answers of 50 to 800 tokens of the tiny T5 tokenizer, the token ids each
method decodes and its wall time per answer (best of five), side by side.

    .venv/bin/python benchmarks/bench_token_spans.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from training.ml.rewards import prefix_token_char_spans, token_char_spans  # noqa: E402
from training.ml.tiny import build_tiny_tokenizer  # noqa: E402


class Counting:
    def __init__(self, inner):
        self.inner, self.decoded = inner, 0
        self.all_special_ids = inner.all_special_ids

    def decode(self, ids, **kwargs):
        self.decoded += len(ids)
        return self.inner.decode(ids, **kwargs)

    def batch_decode(self, rows, **kwargs):
        self.decoded += sum(len(r) for r in rows)
        return self.inner.batch_decode(rows, **kwargs)


def main() -> None:
    records = json.loads((REPO_ROOT.parent / "shared/data/qa_feedback/dev.json").read_text(encoding="utf-8"))[:200]
    answers = [r["answer"][0] for r in records]
    tokenizer = build_tiny_tokenizer(texts=answers + [r["text"] for r in records[:50]])
    ids = tokenizer(" ".join(answers), add_special_tokens=False)["input_ids"]
    print(f"{'tokens':>7} {'windowed ids':>13} {'prefix ids':>11} {'ratio':>6} {'windowed ms':>12} {'prefix ms':>10}")
    for length in (50, 100, 200, 400, 800):
        row = ids[:length]
        figures = []
        for method in (token_char_spans, prefix_token_char_spans):
            times = []
            for _ in range(5):  # the best of five: the machine is shared
                counting = Counting(tokenizer)
                started = time.perf_counter()
                result = method(counting, row)
                times.append((time.perf_counter() - started) * 1000)
            figures.append((counting.decoded, min(times), result))
        assert figures[0][2] == figures[1][2]
        (fast, fast_ms, _), (slow, slow_ms, _) = figures
        print(f"{length:>7} {fast:>13} {slow:>11} {slow / fast:>6.1f} {fast_ms:>12.1f} {slow_ms:>10.1f}")


if __name__ == "__main__":
    main()
