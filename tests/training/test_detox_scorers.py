"""Toxicity scorers: the Perspective client against a fake API on the loopback address, the classifier, the lexicon."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from training.ml.detox.scorers import (
    ClassifierScorer,
    LexiconScorer,
    PerspectiveScorer,
    RateLimiter,
    ScorerError,
    build_scorer,
)

KEY_ENV = "GRANARY_TEST_PERSPECTIVE_KEY"


class FakePerspective:
    """A Perspective API stand-in: answers `statuses` first (then 200), scores a text by its length."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"at": time.monotonic(), "key": parse_qs(urlparse(self.path).query).get("key"),
                                       "body": body})
                status = outer.statuses.pop(0) if outer.statuses else 200
                text = body["comment"]["text"]
                payload = {"attributeScores": {"TOXICITY": {"summaryScore": {"value": min(1.0, len(text) / 100), "type": "PROBABILITY"}}}}
                data = json.dumps(payload if status == 200 else {"error": {"code": status}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1alpha1/comments:analyze"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "secret-key")
    with FakePerspective() as fake:
        yield fake


def client(api, **kwargs) -> PerspectiveScorer:
    kwargs.setdefault("requests_per_second", 1000.0)
    return PerspectiveScorer(key_env=KEY_ENV, url=api.url, **kwargs)


def test_it_scores_texts_with_the_api_key_and_the_toxicity_attribute(api):
    scores = client(api).score(["x" * 30, "y" * 70])

    assert scores == [pytest.approx(0.3), pytest.approx(0.7)]
    assert [r["key"] for r in api.requests] == [["secret-key"], ["secret-key"]]
    assert api.requests[0]["body"] == {"comment": {"text": "x" * 30}, "languages": ["en"], "requestedAttributes": {"TOXICITY": {}}}


def test_a_text_scored_once_costs_no_second_request_even_in_a_new_client(api, tmp_path):
    cache = tmp_path / "cache.jsonl"
    first = client(api, cache_file=cache)
    assert first.score(["same text", "same text", "other"]) == [pytest.approx(0.09), pytest.approx(0.09), pytest.approx(0.05)]
    assert first.score(["other", "same text"]) == [pytest.approx(0.05), pytest.approx(0.09)]
    assert len(api.requests) == 2  # one per distinct text, the repeat and the re-score served from the cache

    second = client(api, cache_file=cache)
    assert second.score(["other", "same text"]) == [pytest.approx(0.05), pytest.approx(0.09)]
    assert len(api.requests) == 2 and second.requests_sent == 0


def test_empty_text_is_not_sent(api):
    assert client(api).score(["", "  "]) == [0.0, 0.0]
    assert api.requests == []


def test_it_retries_429_and_5xx_with_exponential_backoff(api):
    api.statuses = [429, 500, 503]
    sleeps: list[float] = []
    scorer = client(api, backoff_seconds=0.5, sleep=sleeps.append)

    assert scorer.score(["a" * 40]) == [pytest.approx(0.4)]
    assert len(api.requests) == 4
    assert [s for s in sleeps if s >= 0.1] == [0.5, 1.0, 2.0]


def test_it_gives_up_after_the_last_retry_naming_the_status(api):
    api.statuses = [503] * 10
    scorer = client(api, max_retries=2, backoff_seconds=0.0)

    with pytest.raises(ScorerError, match=r"still failing after 2 retries \(HTTP 503\)"):
        scorer.score(["text"])
    assert len(api.requests) == 3


def test_a_refusal_that_retrying_cannot_fix_fails_at_once(api):
    api.statuses = [400]
    with pytest.raises(ScorerError, match="refused the request: HTTP 400"):
        client(api, backoff_seconds=0.0).score(["text"])
    assert len(api.requests) == 1


def test_requests_keep_to_the_rate_limit(api):
    scorer = client(api, requests_per_second=20.0)
    sent: list[float] = []
    post = scorer.session.post

    def timed_post(*args, **kwargs):
        sent.append(time.monotonic())  # when the request leaves (arrival times jitter with the machine's load)
        return post(*args, **kwargs)

    scorer.session.post = timed_post
    scorer.score([f"text {i}" for i in range(5)])

    # The limiter spaces its releases exactly (test below, on a fake clock); a post leaves a little after its
    # release, by however long a busy machine takes to run the caller again, so single gaps between posts can
    # fall short of the interval by that delay. Four intervals must still lie between the first post and the last.
    assert len(api.requests) == 5 and sent[-1] - sent[0] >= 4 * 0.05 - 5e-3


def test_the_rate_limiter_waits_out_the_interval():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    limiter.wait()
    limiter.wait()
    now[0] += 1.0
    limiter.wait()
    assert slept == [0.25]


def test_a_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ScorerError, match=f"needs an API key in the environment variable {KEY_ENV}"):
        PerspectiveScorer(key_env=KEY_ENV)
    with pytest.raises(ScorerError, match=KEY_ENV):
        build_scorer("perspective", key_env=KEY_ENV)


def test_the_lexicon_scores_by_listed_words():
    scorer = LexiconScorer(["stupid", "awful"])
    assert scorer.score(["A fine day.", "So STUPID.", "Stupid and awful!", "stupidity is not listed"]) == [0.0, 0.5, 0.75, 0.0]
    with pytest.raises(ScorerError):
        LexiconScorer([" "])


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from training.ml.tiny import build_tiny_tokenizer

    out = tmp_path_factory.mktemp("classifier")
    tokenizer = build_tiny_tokenizer(texts=["a calm sentence", "a rude sentence"], vocab_size=120)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, id2label={0: "neutral", 1: "toxic"}, label2id={"neutral": 0, "toxic": 1},
                        pad_token_id=tokenizer.pad_token_id)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_the_classifier_gives_its_toxic_labels_probability_in_batches(tiny_classifier):
    texts = ["a calm sentence", "a rude sentence", "", "calm"]
    toxic = ClassifierScorer(tiny_classifier, toxic_label="toxic", batch_size=3, device="cpu")
    neutral = build_scorer("classifier", model=str(tiny_classifier), toxic_label="neutral", batch_size=4)
    one_by_one = ClassifierScorer(tiny_classifier, toxic_label="1", batch_size=1, device="cpu")

    scores = toxic.score(texts)
    assert all(0 < s < 1 for s in scores)
    assert [a + b for a, b in zip(scores, neutral.score(texts))] == [pytest.approx(1.0)] * 4
    assert one_by_one.score(texts) == [pytest.approx(s, abs=1e-5) for s in scores]


def test_the_classifier_refuses_a_label_it_does_not_have_and_a_missing_model(tiny_classifier, tmp_path):
    with pytest.raises(ScorerError, match="toxic_label 'hateful' is not a label of the classifier; its labels: neutral, toxic"):
        ClassifierScorer(tiny_classifier, toxic_label="hateful")
    with pytest.raises(ScorerError, match="classifier"):
        ClassifierScorer(tmp_path / "nothing-here")
    with pytest.raises(ScorerError, match="needs a model"):
        build_scorer("classifier")
