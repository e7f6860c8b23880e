"""SFT of tiny seq2seq and causal policies: training, ROUGE-Lsum, best model, resume, config checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.kinds import build_config
from training.ml.configs import ConfigError, from_dict
from training.ml.progress import Reporter

from tests.training.run_fixtures import one_torch_thread  # noqa: F401  (a fixture)
from training.ml.sft import IGNORE_INDEX, SFTConfig, run, sft_batch


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory, qa_feedback_dir) -> Path:
    root = tmp_path_factory.mktemp("sft")
    records = json.loads((qa_feedback_dir / "dev.json").read_text(encoding="utf-8"))
    (root / "train.json").write_text(json.dumps(records[:16]), encoding="utf-8")
    (root / "dev.json").write_text(json.dumps(records[16:20]), encoding="utf-8")
    return root


def sft_config(data: Path, **overrides) -> SFTConfig:
    values = {
        "train_file": str(data / "train.json"),
        "eval_file": str(data / "dev.json"),
        "model_name_or_path": "{tiny_t5}",
        "max_input_len": 64,
        "max_output_len": 16,
        "epochs": 2,
        "batch_size": 4,
        "grad_accum": 2,
        "learning_rate": 3e-3,
        "log_every": 1,
        "eval_batch_size": 4,
    }
    values.update(overrides)
    return from_dict(SFTConfig, values)


def run_sft(config: SFTConfig, out: Path, *, reporter=None, resume_from=None) -> list[dict]:
    reporter = reporter or Reporter(out / "events.jsonl")
    try:
        summary = run(config, kind="sft", output_dir=out, reporter=reporter, resume_from=resume_from)
        reporter.done(**summary)
    finally:
        reporter.close()
    return [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]


def metric_values(events: list[dict], key: str) -> list[tuple[int, float]]:
    return [(e["step"], e["metrics"][key]) for e in events if e["event"] == "metrics" and key in e["metrics"]]


@pytest.mark.slow
def test_it_trains_a_tiny_t5_and_keeps_the_best_model_by_dev_rouge(data, tmp_path):
    events = run_sft(sft_config(data), tmp_path)

    losses = metric_values(events, "train/loss")
    rouge = metric_values(events, "eval/rouge_lsum")
    assert [step for step, _ in rouge] == [2, 4]  # one evaluation per epoch of 2 optimizer steps
    assert losses[-1][1] < losses[0][1]
    assert all(0.0 <= value <= 1.0 for _, value in rouge)
    summary = next(e for e in events if e["event"] == "done")["summary"]
    assert summary["best_rouge_lsum"] == max(value for _, value in rouge)
    assert {(e["kind"], e["path"]) for e in events if e["event"] == "artifact"} >= {("model", "model"), ("checkpoint", "checkpoints/last")}
    assert json.loads((tmp_path / "checkpoints" / "last" / "state.json").read_text())["step"] == 4

    from training.ml.policy import Policy

    policy = Policy.load(tmp_path / "model")
    assert policy.is_seq2seq and len(policy.tokenizer) > 0


@pytest.mark.slow
def test_it_trains_a_causal_policy_on_the_answer_tokens(data, tmp_path):
    events = run_sft(sft_config(data, model_name_or_path="{tiny_gpt2}", epochs=1), tmp_path)

    assert metric_values(events, "eval/rouge_lsum")
    from training.ml.policy import Policy

    assert not Policy.load(tmp_path / "model").is_seq2seq


def test_causal_batches_learn_only_the_answer_and_its_end(data, tmp_path):
    from training.ml.data import load_examples
    from training.ml.policy import Policy
    from training.ml.tiny import build_tiny_gpt2

    examples = load_examples(data / "train.json")[:2]
    policy = Policy.load(build_tiny_gpt2(tmp_path / "gpt2", texts=[e.text for e in examples] + [e.target for e in examples]))

    batch = sft_batch(policy, examples, max_input_len=32, max_output_len=8)

    for row, example in enumerate(examples):
        labels = batch["labels"][row]
        learned = labels[labels != IGNORE_INDEX].tolist()
        answer = policy.tokenizer(example.target, add_special_tokens=False)["input_ids"][:7]
        assert learned == answer + [policy.eos_token_id]
        first = int((labels != IGNORE_INDEX).nonzero()[0])
        assert batch["input_ids"][row, first - 1].item() == policy.eos_token_id  # the prompt ends in the marker
        assert batch["attention_mask"][row, : first + len(learned)].all()


@pytest.mark.slow
def test_a_cancelled_run_resumes_from_its_last_checkpoint(data, tmp_path):
    class StopAt(Reporter):
        def progress(self, step, total=None):
            if step == 3:
                raise KeyboardInterrupt("cancelled")
            super().progress(step, total)

    config = sft_config(data, eval_every=1, eval_file="", grad_accum=1)
    with pytest.raises(KeyboardInterrupt):
        run_sft(config, tmp_path, reporter=StopAt(tmp_path / "events.jsonl"))
    (tmp_path / "events.jsonl").rename(tmp_path / "first.jsonl")

    events = run_sft(config, tmp_path, resume_from=tmp_path / "checkpoints" / "last")

    start = next(e for e in events if e["event"] == "start")
    assert start["resumed_from_step"] == 2
    assert [e["step"] for e in events if e["event"] == "progress"] == [3, 4, 5, 6, 7, 8]
    assert json.loads((tmp_path / "checkpoints" / "last" / "state.json").read_text())["step"] == 8


def test_rouge_lsum_is_one_for_a_copy_and_zero_for_disjoint_words():
    from training.ml.evaluate import rouge_lsum
    from annotation.qa.text import load_splitter

    nlp, _ = load_splitter("sentencizer")
    scores = rouge_lsum(["The cat sat. It slept.", "zebra", ""], [["The cat sat. It slept."], ["a dog ran"], ["a dog"]], nlp=nlp)

    assert scores == pytest.approx([1.0, 0.0, 0.0])


def test_presets_load_and_invalid_values_are_refused_with_the_field_named():
    paper = build_config("sft", preset="paper")
    assert (paper.model_name_or_path, paper.max_input_len, paper.max_output_len) == ("t5-large", 1024, 200)
    assert build_config("sft", preset="tiny").model_name_or_path == "{tiny_t5}"

    with pytest.raises(ConfigError) as error:
        build_config("sft", preset="tiny", overrides={"epochs": 0, "learning_rate": -1.0, "typo": 3})

    assert {field for field, _ in error.value.problems} == {"typo"}  # unknown keys are refused first
    with pytest.raises(ConfigError) as error:
        build_config("sft", preset="tiny", overrides={"epochs": 0, "learning_rate": -1.0})
    assert {field for field, _ in error.value.problems} == {"epochs", "learning_rate"}
