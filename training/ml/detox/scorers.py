"""Toxicity scorers: each maps texts to a toxicity in [0, 1], one call per batch.

  perspective  the Perspective API over HTTP: key from an environment variable, a
               requests-per-second limit, retries with exponential backoff on 429
               and 5xx, and a cache keyed by text (optionally kept in a JSON-lines
               file) so scoring the same text again costs no request
  classifier   any Hugging Face sequence classifier (hub name or local folder); the
               probability of its toxic label, batched, on the GPU when there is one
  lexicon      a word list: 1 - 0.5 ** (listed words in the text); for tests, the
               demo and the learning check, never for research claims
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

SCORERS = ("perspective", "classifier", "lexicon")
PERSPECTIVE_URL = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
PERSPECTIVE_KEY_ENV = "PERSPECTIVE_API_KEY"
# Mild words, so the demo and the tests need no offensive text to show the mechanics.
DEFAULT_LEXICON = ("stupid", "awful", "idiot", "dumb", "hate", "nasty", "ugly", "terrible", "useless", "pathetic")
_WORD = re.compile(r"[a-z']+")


class ScorerError(RuntimeError):
    """A scorer that cannot score: a missing key, a model that will not load, an API that keeps failing."""


class ToxicityScorer(Protocol):
    def score(self, texts: Sequence[str]) -> list[float]: ...


# ---------------------------------------------------------------- lexicon


class LexiconScorer:
    """Toxicity 1 - 0.5 ** k for a text holding k listed words (0 for none, 0.5 for one, 0.75 for two)."""

    name = "lexicon"

    def __init__(self, words: Iterable[str] = DEFAULT_LEXICON):
        self.words = frozenset(w.strip().lower() for w in words if w.strip())
        if not self.words:
            raise ScorerError("the lexicon scorer needs at least one word")

    def hits(self, text: str) -> int:
        return sum(1 for w in _WORD.findall(text.lower()) if w in self.words)

    def score(self, texts: Sequence[str]) -> list[float]:
        return [1.0 - 0.5 ** self.hits(t) for t in texts]


# ---------------------------------------------------------------- classifier


class ClassifierScorer:
    """The probability a sequence classifier gives its toxic label (softmax, or sigmoid for multi-label models)."""

    name = "classifier"

    def __init__(self, model: str | os.PathLike, *, toxic_label: str = "toxic", batch_size: int = 32,
                 max_length: int = 512, device: Any = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model))
            self.model = AutoModelForSequenceClassification.from_pretrained(str(model))
        except (OSError, ValueError) as exc:
            raise ScorerError(f"classifier {model}: {exc}") from exc
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.label_index = self._label_index(toxic_label)
        self.multi_label = getattr(self.model.config, "problem_type", None) == "multi_label_classification"

    def _label_index(self, toxic_label: str) -> int:
        labels = {str(v).lower(): int(k) for k, v in self.model.config.id2label.items()}
        if toxic_label.lower() in labels:
            return labels[toxic_label.lower()]
        if toxic_label.isdigit() and int(toxic_label) < self.model.config.num_labels:
            return int(toxic_label)
        raise ScorerError(f"toxic_label {toxic_label!r} is not a label of the classifier; its labels: "
                          f"{', '.join(str(v) for v in self.model.config.id2label.values())}")

    def score(self, texts: Sequence[str]) -> list[float]:
        import torch

        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = [t if t.strip() else " " for t in texts[start : start + self.batch_size]]
            enc = self.tokenizer(chunk, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
            with torch.no_grad():
                logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float()
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            out.extend(probs[:, self.label_index].tolist())
        return out


# ---------------------------------------------------------------- perspective


class RateLimiter:
    """At most `per_second` calls a second: each call waits until 1 / per_second after the previous one."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = self.clock()
            if now < self.next_at:
                self.sleep(self.next_at - now)
                now = max(self.clock(), self.next_at)  # from when the call really goes: a late wake-up never shortens the next gap
            self.next_at = now + self.interval


class PerspectiveScorer:
    """The Perspective API's TOXICITY summary score, one request per text not yet in the cache."""

    name = "perspective"
    RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

    def __init__(self, *, key_env: str = PERSPECTIVE_KEY_ENV, url: str = PERSPECTIVE_URL, requests_per_second: float = 1.0,
                 max_retries: int = 5, backoff_seconds: float = 1.0, timeout: float = 30.0,
                 cache_file: str | os.PathLike | None = None, attribute: str = "TOXICITY",
                 sleep: Callable[[float], None] = time.sleep):
        key = os.environ.get(key_env, "").strip()
        if not key:
            raise ScorerError(f"the perspective scorer needs an API key in the environment variable {key_env}; "
                              "set it on the worker, or choose the classifier or lexicon scorer")
        import requests

        self.session = requests.Session()
        self.key, self.url, self.attribute = key, url, attribute
        self.max_retries, self.backoff_seconds, self.timeout = max_retries, backoff_seconds, timeout
        self.sleep = sleep
        self.limiter = RateLimiter(requests_per_second, sleep=sleep)
        self.cache: dict[str, float] = {}
        self.requests_sent = 0
        self.cache_file = Path(cache_file) if cache_file else None
        if self.cache_file and self.cache_file.is_file():
            for line in self.cache_file.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.cache[row["text"]] = float(row["toxicity"])

    def score(self, texts: Sequence[str]) -> list[float]:
        for text in dict.fromkeys(texts):
            if text not in self.cache:
                self.cache[text] = self._request(text) if text.strip() else 0.0
                if self.cache_file:
                    self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                    with self.cache_file.open("a", encoding="utf-8") as f:
                        f.write(json.dumps({"text": text, "toxicity": self.cache[text]}) + "\n")
        return [self.cache[t] for t in texts]

    def _request(self, text: str) -> float:
        import requests

        body = {"comment": {"text": text}, "languages": ["en"], "requestedAttributes": {self.attribute: {}}}
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            self.limiter.wait()
            self.requests_sent += 1
            try:
                response = self.session.post(self.url, params={"key": self.key}, json=body, timeout=self.timeout)
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in self.RETRY_STATUS:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                raise ScorerError(f"perspective API refused the request: HTTP {response.status_code} {response.text[:200]}")
            try:
                return float(response.json()["attributeScores"][self.attribute]["summaryScore"]["value"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ScorerError(f"perspective API answered without attributeScores.{self.attribute}.summaryScore.value") from exc
        raise ScorerError(f"perspective API still failing after {self.max_retries} retries ({problem})")


def build_scorer(name: str, *, model: str = "", toxic_label: str = "toxic", batch_size: int = 32,
                 lexicon: Sequence[str] = (), requests_per_second: float = 1.0, key_env: str = PERSPECTIVE_KEY_ENV,
                 url: str = PERSPECTIVE_URL, cache_file: str | os.PathLike | None = None) -> ToxicityScorer:
    """The scorer a config names."""
    if name == "lexicon":
        return LexiconScorer(lexicon or DEFAULT_LEXICON)
    if name == "classifier":
        if not model.strip():
            raise ScorerError("the classifier scorer needs a model: a hub name or a folder inside MODEL_ROOT")
        return ClassifierScorer(model, toxic_label=toxic_label, batch_size=batch_size)
    if name == "perspective":
        return PerspectiveScorer(key_env=key_env, url=url, requests_per_second=requests_per_second, cache_file=cache_file)
    raise ScorerError(f"unknown scorer {name!r}; expected one of {', '.join(SCORERS)}")
