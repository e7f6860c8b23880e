"""Memory savers as config options: LoRA, gradient checkpointing, 8-bit optimizers, bf16 reward models, lazy spaCy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training.run_fixtures import one_torch_thread  # noqa: F401  (a fixture)
from tests.training.test_ppo import StopAt, assert_checkpoint, metrics_by_step, run_ppo, tiny, tiny_config  # noqa: F401
from training.ml.configs import ConfigError, PPOConfig, from_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PERF_KEYS = {"perf/step_seconds", "perf/generation_seconds", "perf/scoring_seconds", "perf/training_seconds",
             "perf/tokens_per_second", "perf/samples_per_second", "perf/tflops_per_device"}


def _policy_state(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(folder).state_dict()


def _run_broken_and_resumed(tiny, tmp_path, **options) -> tuple[Path, Path]:
    config = tiny_config(tiny, eval_file="", total_episodes=24, save_every=1, **options)
    run_ppo("ppo_fine_grained", config, tmp_path / "straight")
    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        run_ppo("ppo_fine_grained", config, broken, reporter=StopAt(broken / "events.jsonl", at=3))
    assert_checkpoint(broken / "checkpoints" / "last", step=2)
    (broken / "events.jsonl").rename(broken / "first.jsonl")
    events = run_ppo("ppo_fine_grained", config, broken, resume_from=broken / "checkpoints" / "last")
    start = next(e for e in events if e["event"] == "start")
    assert start["resumed_from_step"] == 2
    assert_checkpoint(broken / "checkpoints" / "last", step=3)
    return tmp_path / "straight", broken


@pytest.mark.slow
def test_a_lora_run_completes_and_resumes_where_an_unbroken_run_ends(tiny, tmp_path):
    straight, broken = _run_broken_and_resumed(tiny, tmp_path, lora_r=4, lora_alpha=8)

    last = broken / "checkpoints" / "last"
    # The adapters beside the merged full weights; only they trained.
    assert (last / "policy_adapter" / "adapter_config.json").is_file()
    assert (last / "value_adapter" / "adapter_config.json").is_file()
    original = _policy_state(tiny / "policy")
    trained = _policy_state(straight / "checkpoints" / "last" / "policy")
    changed = {k for k in original if not torch.equal(original[k], trained[k])}
    assert changed and all(k.endswith(("q.weight", "v.weight")) for k in changed)
    resumed = _policy_state(last / "policy")
    for key in trained:
        torch.testing.assert_close(resumed[key], trained[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_gradient_checkpointing_run_completes_and_resumes_where_an_unbroken_run_ends(tiny, tmp_path):
    straight, broken = _run_broken_and_resumed(tiny, tmp_path, gradient_checkpointing=True)

    trained = _policy_state(straight / "checkpoints" / "last" / "policy")
    resumed = _policy_state(broken / "checkpoints" / "last" / "policy")
    for key in trained:
        torch.testing.assert_close(resumed[key], trained[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_gradient_checkpointing_and_lora_train_as_the_plain_run_does(tiny, tmp_path):
    """Checkpointing recomputes the same numbers; LoRA trains (another model, so only its figures are checked)."""
    plain = metrics_by_step(run_ppo("ppo_fine_grained", tiny_config(tiny, eval_file="", total_episodes=8), tmp_path / "a"))
    checkpointed = metrics_by_step(run_ppo("ppo_fine_grained", tiny_config(tiny, eval_file="", total_episodes=8,
                                                                          gradient_checkpointing=True), tmp_path / "b"))
    for key in ("train/pg_loss", "train/vf_loss", "train/approx_kl", "reward/mean"):
        assert checkpointed[1][key] == pytest.approx(plain[1][key], rel=1e-4, abs=1e-6)
    for key in PERF_KEYS:
        assert plain[1][key] > 0  # the step's time split and throughput, logged with its metrics
    split = sum(plain[1][f"perf/{s}_seconds"] for s in ("generation", "scoring", "training"))
    assert split <= plain[1]["perf/step_seconds"] * 1.001


def test_the_lora_reference_is_the_policy_with_adapters_off_and_its_merged_weights_are_its_function(tiny):
    from training.ml.memory import adapters_off, merged_state_dict, with_lora
    from training.ml.policy import Policy

    policy = Policy.load(tiny / "policy")
    reference = Policy.load(tiny / "policy")
    policy.model = with_lora(policy.model, r=4, alpha=8, dropout=0.0)
    with torch.no_grad():  # a trained adapter: B is zero when fresh
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    prompts = policy.encode_prompts(["question: where is Paris?", "question: what is it?"], max_input_len=32)
    response = torch.tensor([[5, 9, 12, 1], [7, 3, 1, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    policy.model.eval()
    with torch.no_grad():
        tuned, _ = policy.score(prompts, response, mask)
        with adapters_off(policy.bare):
            off, _ = policy.score(prompts, response, mask)
        ref, _ = reference.score(prompts, response, mask)
        torch.testing.assert_close(off, ref)
        assert not torch.allclose(tuned, ref)
        merged = Policy.load(tiny / "policy")
        missing = merged.model.load_state_dict(merged_state_dict(policy.model), strict=False)
        assert not missing.unexpected_keys and set(missing.missing_keys) <= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}
        merged.model.eval()
        torch.testing.assert_close(merged.score(prompts, response, mask)[0], tuned, rtol=1e-5, atol=1e-5)


def test_wrapping_a_model_in_lora_prints_no_library_deprecation_noise(tiny):
    import warnings

    from training.ml.memory import with_lora
    from training.ml.policy import Policy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = with_lora(Policy.load(tiny / "policy").model, r=4, alpha=8, dropout=0.0)
    assert hasattr(model, "peft_config")
    assert not [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]


def test_8bit_optimizers_are_refused_without_a_cuda_gpu_naming_the_setting(tiny, tmp_path):
    from training.ml.memory import make_optimizer
    from training.ml.ppo import run

    with pytest.raises(ConfigError) as refused:
        make_optimizer([torch.nn.Parameter(torch.zeros(2))], kind="adam", lr=1e-3, eight_bit=True, device="cpu")
    assert refused.value.field == "optim_8bit" and "CUDA" in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        run(from_dict(PPOConfig, tiny_config(tiny, optim_8bit=True)), kind="ppo_fine_grained",
            output_dir=tmp_path, reporter=_Quiet(), resume_from=None)
    assert refused.value.field == "optim_8bit"


def test_memory_saver_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError) as refused:
        from_dict(PPOConfig, {"lora_r": -1, "lora_alpha": 0, "lora_dropout": 1.0})
    assert {f for f, _ in refused.value.problems} == {"lora_r", "lora_alpha", "lora_dropout"}
    with pytest.raises(ConfigError) as refused:
        from_dict(PPOConfig, {"rm_dtype": "fp8", "gradient_checkpointing": "yes"})
    assert {f for f, _ in refused.value.problems} == {"rm_dtype", "gradient_checkpointing"}


def test_reward_models_load_in_bf16_when_asked(tiny):
    from training.ml.reward_models import PreferenceRewardModel, TokenRewardModel

    r1 = TokenRewardModel.load(tiny / "r1", dtype=torch.bfloat16)
    r3 = PreferenceRewardModel.load(tiny / "r3", dtype=torch.bfloat16)
    assert next(r1.model.parameters()).dtype == torch.bfloat16 == next(r3.model.parameters()).dtype
    full = PreferenceRewardModel.load(tiny / "r3")
    text = "question: where is Paris? answer: Paris is in France."
    assert r3.score([text])[0] == pytest.approx(full.score([text])[0], abs=0.05)
    assert len(r1.predict([["Paris", "is", "big", "</s>"]])[0]) == 1


class _Quiet:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


HOLISTIC_SCRIPT = """
import json, sys
from pathlib import Path
from training.ml.configs import PPOConfig, from_dict
from training.ml.ppo import run
from training.ml.progress import Reporter
config = json.loads(sys.argv[1]); out = Path(sys.argv[2])
reporter = Reporter(out / "events.jsonl")
run(from_dict(PPOConfig, config), kind="ppo_holistic", output_dir=out, reporter=reporter, resume_from=None)
reporter.close()
print(json.dumps(sorted(m for m in sys.modules if m == "spacy" or m.startswith(("spacy.", "thinc")))))
"""


@pytest.mark.slow
def test_a_holistic_run_never_imports_spacy(tiny, tmp_path):
    config = tiny_config(tiny, eval_file="", total_episodes=8)
    for name in ("rm_relevance_model", "rm_factuality_model", "rm_completeness_model"):
        config[name] = ""  # no fine-grained judge: nothing splits text
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", HOLISTIC_SCRIPT, json.dumps(config), str(tmp_path)], cwd=root,
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
                               "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "done" for e in events) or any(e["event"] == "metrics" for e in events)
    # The same run in a fine-grained setting does load it: the check can see spaCy.
    fine = subprocess.run([sys.executable, "-c", HOLISTIC_SCRIPT.replace("ppo_holistic", "ppo_fine_grained"),
                           json.dumps(tiny_config(tiny, eval_file="", total_episodes=8)), str(tmp_path / "fine")],
                          cwd=root, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
                               "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)})
    assert done.returncode == 0 and "spacy" in json.loads(fine.stdout.strip().splitlines()[-1]), fine.stderr[-2000:]
