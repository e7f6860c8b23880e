"""PPO on tiny offline models: fine-grained and holistic runs, metrics, checkpoints, resume, empty answers."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest
import torch

from training.kinds import KINDS, build_config
from training.ml.configs import ConfigError, from_dict
from training.ml.ppo import PPOConfig, gae, masked_whiten, run
from training.ml.progress import Reporter

from tests.training.run_fixtures import one_torch_thread  # noqa: F401  (a fixture)

TRAIN_KEYS = {"train/pg_loss", "train/vf_loss", "train/approx_kl", "train/kl", "train/entropy", "train/lr", "train/clipfrac"}
FINE_REWARD_KEYS = {"reward/mean", "reward/relevance", "reward/factuality", "reward/completeness"}
EVAL_KEYS = {"eval/rouge_lsum", "eval/mean_reward", "eval/relevance_ratio", "eval/factuality_ratio",
             "eval/completeness_reward", "eval/length"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, qa_feedback_dir):
    """Data files, a tiny T5 policy and tiny random reward models in the folders PPO loads."""
    from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

    from training.ml.tiny import build_tiny_t5, build_tiny_tokenizer

    root = tmp_path_factory.mktemp("ppo")
    records = json.loads((qa_feedback_dir / "dev.json").read_text(encoding="utf-8"))
    (root / "train.json").write_text(json.dumps(records[:12]), encoding="utf-8")
    (root / "dev.json").write_text(json.dumps(records[12:16]), encoding="utf-8")
    texts = [r["text"] for r in records[:16]] + [r["answer"][0] for r in records[:16]]
    tokenizer = build_tiny_tokenizer(texts=texts)
    build_tiny_t5(root / "policy", tokenizer=tokenizer)

    def encoder_config(**extra):
        return BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id, **extra)

    for name, labels in (("r1", ["O", "NF-ERR"]), ("r2", ["O", "F-ERR"])):
        torch.manual_seed(len(name))
        model = BertForTokenClassification(encoder_config(id2label=dict(enumerate(labels)),
                                                          label2id={label: i for i, label in enumerate(labels)}))
        model.config.rm_max_length = 512
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    for name in ("r3", "preference"):
        model = BertForSequenceClassification(encoder_config(num_labels=1))
        model.config.rm_max_length = 512
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        (root / name / "reward_stats.json").write_text(json.dumps({"mean": 0.05, "std": 0.5}), encoding="utf-8")
    return root


def tiny_config(root: Path, **overrides) -> dict:
    config = {
        "train_file": str(root / "train.json"),
        "eval_file": str(root / "dev.json"),
        "policy_model": str(root / "policy"),
        "rm_relevance_model": str(root / "r1"),
        "rm_factuality_model": str(root / "r2"),
        "rm_completeness_model": str(root / "r3"),
        "rm_preference_model": str(root / "preference"),
        "total_episodes": 16,
        "prompts_per_step": 4,
        "samples_per_prompt": 2,
        "max_input_len": 96,
        "max_new_tokens": 16,
        "generation_batch_size": 8,
        "train_batch_size": 4,
        "micro_batch_size": 2,
        "ppo_epochs": 2,
        "learning_rate": 1e-3,
        "warmup_steps": 1,
        "eval_every": 1,
        "eval_batch_size": 4,
        "num_eval_samples": 2,
    }
    config.update(overrides)
    return config


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def metrics_by_step(events: list[dict]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for e in events:
        if e["event"] == "metrics":
            out.setdefault(e["step"], {}).update(e["metrics"])
    return out


def run_ppo(kind: str, config: dict, out: Path, *, reporter=None, resume_from=None) -> list[dict]:
    reporter = reporter or Reporter(out / "events.jsonl")
    try:
        run(from_dict(PPOConfig, config), kind=kind, output_dir=out, reporter=reporter, resume_from=resume_from)
    finally:
        reporter.close()
    return read_events(out / "events.jsonl")


def assert_checkpoint(folder: Path, *, step: int) -> None:
    assert (folder / "policy" / "config.json").is_file()
    assert (folder / "value" / "value_head.pt").is_file()
    assert (folder / "optimizer.pt").is_file() and (folder / "scheduler.pt").is_file()
    assert json.loads((folder / "state.json").read_text())["step"] == step


@pytest.mark.slow
def test_a_fine_grained_run_completes_and_records_every_metric(tiny, tmp_path):
    events = run_ppo("ppo_fine_grained", tiny_config(tiny), tmp_path)

    by_step = metrics_by_step(events)
    assert sorted(by_step) == [0, 1, 2]
    for step in (1, 2):
        assert TRAIN_KEYS | FINE_REWARD_KEYS <= set(by_step[step])
    for step in (0, 1, 2):
        assert EVAL_KEYS <= set(by_step[step])
    assert all(math.isfinite(v) for m in by_step.values() for v in m.values())
    assert by_step[1]["train/kl"] == pytest.approx(0.0, abs=1e-5)  # the first rollout comes from the reference itself
    assert 0.0 <= by_step[2]["eval/relevance_ratio"] <= 1.0

    samples = [e for e in events if e["event"] == "sample"]
    assert len(samples) == 2 * 3
    for sample in samples:
        assert "".join(s["text"] for s in sample["segments"]) == sample["text"]
        if sample["text"]:
            assert sum(s["reward"] for s in sample["segments"]) == pytest.approx(sample["total_reward"])

    assert_checkpoint(tmp_path / "checkpoints" / "last", step=2)
    best = json.loads((tmp_path / "checkpoints" / "best" / "state.json").read_text())
    assert best["best"] == max(by_step[s]["eval/mean_reward"] for s in (0, 1, 2))
    artifacts = {(e["kind"], e["path"]) for e in events if e["event"] == "artifact"}
    assert {("checkpoint", "checkpoints/last"), ("checkpoint", "checkpoints/best"), ("model", "checkpoints/best/policy")} <= artifacts


@pytest.mark.slow
def test_a_holistic_run_through_the_entry_point_completes_and_records_every_metric(tiny, tmp_path):
    from training.ml.entry import main

    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(tiny_config(tiny)), encoding="utf-8")

    handler = signal.getsignal(signal.SIGTERM)  # main() installs its own; give pytest its handler back
    try:
        code = main([*KINDS["ppo_holistic"].entry_args(), "--config", str(config_file), "--output-dir", str(tmp_path / "out"), "--no-wandb"])
    finally:
        signal.signal(signal.SIGTERM, handler)

    assert code == 0
    events = read_events(tmp_path / "out" / "events.jsonl")
    by_step = metrics_by_step(events)
    assert TRAIN_KEYS | {"reward/mean", "reward/preference"} <= set(by_step[2])
    assert EVAL_KEYS <= set(by_step[2])  # R1-R3 named, so evaluation measures them too
    done = [e for e in events if e["event"] == "done"]
    assert done and done[0]["summary"]["step"] == 2 and done[0]["summary"]["kind"] == "ppo_holistic"
    holistic_samples = [e for e in events if e["event"] == "sample" and e["text"]]
    for sample in holistic_samples:
        assert sample["segments"] == [{"text": sample["text"], "reward": pytest.approx(sample["total_reward"]), "label": ""}]
    assert_checkpoint(tmp_path / "out" / "checkpoints" / "last", step=2)


class StopAt(Reporter):
    """Interrupts the run (as Ctrl-C does) when step `at` reports progress, before that step is saved."""

    def __init__(self, path: Path, at: int):
        super().__init__(path)
        self.at = at

    def progress(self, step, total=None):
        if step == self.at:
            raise KeyboardInterrupt("cancelled")
        super().progress(step, total)


@pytest.mark.slow
def test_a_resumed_run_continues_from_the_saved_step_and_ends_where_an_unbroken_run_ends(tiny, tmp_path):
    config = tiny_config(tiny, eval_file="", total_episodes=24, save_every=1)
    run_ppo("ppo_fine_grained", config, tmp_path / "straight")

    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        run_ppo("ppo_fine_grained", config, broken, reporter=StopAt(broken / "events.jsonl", at=3))
    assert_checkpoint(broken / "checkpoints" / "last", step=2)
    (broken / "events.jsonl").rename(broken / "first.jsonl")

    events = run_ppo("ppo_fine_grained", config, broken, resume_from=broken / "checkpoints" / "last")

    start = next(e for e in events if e["event"] == "start")
    assert start["resumed_from_step"] == 2 and start["total_steps"] == 3
    assert [e["step"] for e in events if e["event"] == "progress"] == [3]
    assert_checkpoint(broken / "checkpoints" / "last", step=3)
    from transformers import AutoModelForSeq2SeqLM

    resumed = AutoModelForSeq2SeqLM.from_pretrained(broken / "checkpoints" / "last" / "policy").state_dict()
    straight = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "straight" / "checkpoints" / "last" / "policy").state_dict()
    original = AutoModelForSeq2SeqLM.from_pretrained(tiny / "policy").state_dict()
    assert any(not torch.equal(straight[k], original[k]) for k in straight)  # training changed the policy
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_empty_generations_do_not_crash_rewards_or_evaluation(tiny, tmp_path, monkeypatch):
    from training.ml.policy import Policy

    def only_eos(self, prompts, **kwargs):
        ids = torch.full((prompts.input_ids.shape[0], 1), self.eos_token_id, dtype=torch.long)
        return ids, torch.ones_like(ids)

    monkeypatch.setattr(Policy, "generate", only_eos)

    events = run_ppo("ppo_fine_grained", tiny_config(tiny, total_episodes=8), tmp_path)

    by_step = metrics_by_step(events)
    assert by_step[1]["eval/length"] == 0.0
    assert by_step[1]["reward/relevance"] == 0.0 and by_step[1]["reward/factuality"] == 0.0
    assert "eval/relevance_ratio" not in by_step[1]  # nothing to judge: no ratio rather than a made-up one
    assert math.isfinite(by_step[1]["eval/mean_reward"]) and math.isfinite(by_step[1]["train/pg_loss"])
    samples = [e for e in events if e["event"] == "sample"]
    assert samples and all(s["text"] == "" and s["segments"] == [] for s in samples)


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([[0.0, 1.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.25, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])

    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)

    # delta_2 = 2 - 1 = 1; delta_1 = 1 + 1 - 0.25 = 1.75; delta_0 = 0 + 0.25 - 0.5 = -0.25
    # A_2 = 1; A_1 = 1.75 + 0.5 * 1 = 2.25; A_0 = -0.25 + 0.5 * 2.25 = 0.875
    assert advantages[0].tolist() == pytest.approx([0.875, 2.25, 1.0, 0.0])
    assert returns[0].tolist() == pytest.approx([1.375, 2.5, 2.0, 0.0])


def test_reward_scaling_keeps_the_mean_and_whitening_centres():
    x = torch.tensor([[1.0, 3.0, 5.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])

    scaled = masked_whiten(x, mask, shift_mean=False)
    centred = masked_whiten(x, mask, shift_mean=True)

    # mean 3, unbiased std 2 over the three valid entries; the padded entry stays 0.
    assert scaled[0].tolist() == pytest.approx([2.0, 3.0, 4.0, 0.0], abs=1e-4)
    assert centred[0].tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-4)


def test_defaults_and_presets_mirror_the_paper():
    defaults = PPOConfig()
    fine = build_config("ppo_fine_grained", preset="fine_grained")
    holistic = build_config("ppo_holistic", preset="holistic")

    for config in (defaults, fine, holistic):
        assert (config.total_episodes, config.prompts_per_step, config.samples_per_prompt) == (80000, 8, 4)
        assert (config.top_k, config.temperature, config.max_new_tokens, config.max_input_len) == (20, 0.7, 200, 1024)
        assert (config.gamma, config.clip_range, config.clip_range_value, config.ppo_epochs) == (1.0, 0.2, 0.2, 4)
        assert (config.learning_rate, config.kl_threshold) == (1e-5, 10.0)
    assert (fine.kl_coef, fine.gae_lambda) == (0.3, 0.95)
    assert (holistic.kl_coef, holistic.gae_lambda) == (0.2, 0.99)
    assert defaults.resolved("ppo_fine_grained").kl_coef == 0.3 and defaults.resolved("ppo_holistic").gae_lambda == 0.99
    assert (fine.relevance_positive_reward, fine.relevance_negative_reward) == (0.3, -0.3)
    assert (fine.factuality_positive_reward, fine.factuality_negative_reward) == (0.5, -0.5)
    assert fine.completeness_reward_scale == 0.3
    for kind in ("ppo_fine_grained", "ppo_holistic"):
        assert build_config(kind, preset="tiny").total_episodes < 1000


def test_invalid_values_are_refused_with_the_field_named():
    with pytest.raises(ConfigError) as error:
        build_config("ppo_fine_grained", preset="tiny", overrides={"train_batch_size": 3, "temperature": 0, "top_k": "20"})

    fields = {field for field, _ in error.value.problems}
    assert fields == {"top_k"}  # a wrong type is refused before range checks run
    with pytest.raises(ConfigError) as error:
        build_config("ppo_fine_grained", preset="tiny", overrides={"train_batch_size": 3, "temperature": 0.0})
    problems = dict(error.value.problems)
    assert set(problems) == {"train_batch_size", "micro_batch_size", "temperature"}
    assert "4 x 2 = 8" in problems["train_batch_size"]


def test_a_run_without_its_reward_models_is_refused_before_loading_anything(tmp_path):
    config = from_dict(PPOConfig, {"train_file": "train.json", "policy_model": "policy"})

    with pytest.raises(ConfigError) as error:
        run(config, kind="ppo_fine_grained", output_dir=tmp_path, reporter=Reporter(tmp_path / "e.jsonl"), resume_from=None)

    assert {f for f, _ in error.value.problems} == {"rm_relevance_model", "rm_factuality_model", "rm_completeness_model"}
    assert {f for f, _ in config.problems_for("ppo_holistic")} == {"rm_preference_model"}


def test_a_tiny_model_placeholder_is_refused_where_ppo_needs_a_trained_model():
    config = from_dict(PPOConfig, {"train_file": "train.json", "policy_model": "{tiny_t5}", "rm_preference_model": "{tiny_encoder}"})

    problems = dict(config.problems_for("ppo_holistic"))

    assert set(problems) == {"policy_model", "rm_preference_model"}
    assert "{tiny_t5} builds an untrained model" in problems["policy_model"]


def test_a_checkpoint_swap_holds_a_cancel_until_the_new_folder_is_in_place(tmp_path):
    import os
    import signal

    from training.ml.checkpoints import replace_dir

    final = tmp_path / "last"
    final.mkdir()
    (final / "state.json").write_text('{"step": 1}')
    tmp = tmp_path / "last.tmp"
    tmp.mkdir()
    (tmp / "state.json").write_text('{"step": 2}')
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append((signum, final.exists())))
    original_rename = Path.rename

    def rename_then_get_cancelled(self, target):
        result = original_rename(self, target)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives between the two renames
        return result

    try:
        Path.rename = rename_then_get_cancelled
        replace_dir(tmp, final)
    finally:
        Path.rename = original_rename
        signal.signal(signal.SIGTERM, previous)
    assert (final / "state.json").read_text() == '{"step": 2}'
    # The signal was delivered, but only once the new checkpoint was in place.
    assert received and all(in_place for _, in_place in received)
