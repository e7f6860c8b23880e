"""Scale-out preparation: accelerate config files and the worker's choice, DeepSpeed/FSDP code paths on CPU."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file

from annotation.qa.errors import Refused
from training.accelerate_configs import ACCELERATE_DIR, GPU_COUNTS, STRATEGIES, accelerate_config_for
from training.ml import distributed
from training.ml.ppo import OptimizerPair, SchedulerPair, _optimizers, backward, ppo_losses


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_has_a_valid_accelerate_config_for_1_2_4_and_8_gpus(strategy):
    expected = {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}[strategy]
    for n in GPU_COUNTS:
        config = load_config_from_file(str(ACCELERATE_DIR / strategy / f"{n}gpu.yaml"))
        assert config.num_processes == n and config.num_machines == 1
        assert config.distributed_type.value == ("NO" if strategy == "ddp" and n == 1 else expected)
        if strategy.startswith("zero"):
            assert config.deepspeed_config["zero_stage"] == int(strategy[-1])
        if strategy == "fsdp":
            assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_the_worker_picks_the_file_for_its_gpu_count_unless_one_is_named():
    assert accelerate_config_for(gpu_count=0) == ""
    assert accelerate_config_for(gpu_count=4).endswith("config/accelerate/ddp/4gpu.yaml")
    assert accelerate_config_for(gpu_count=8, strategy="zero3").endswith("config/accelerate/zero3/8gpu.yaml")
    assert accelerate_config_for(gpu_count=1, strategy="fsdp").endswith("config/accelerate/fsdp/1gpu.yaml")
    # No file for 3 GPUs: DDP uses all of them (--multi_gpu); a sharded strategy the largest file that fits.
    assert accelerate_config_for(gpu_count=3) == ""
    assert accelerate_config_for(gpu_count=6, strategy="zero2").endswith("zero2/4gpu.yaml")
    assert accelerate_config_for(gpu_count=8, strategy="zero3", explicit=" /etc/mine.yaml ") == "/etc/mine.yaml"
    with pytest.raises(Refused) as refused:
        accelerate_config_for(gpu_count=2, strategy="zero4")
    assert refused.value.field == "TRAINING_ACCELERATE_STRATEGY"


def test_run_execute_launches_with_the_chosen_file(monkeypatch, settings, tmp_path):
    from training import supervisor

    seen = {}

    def fake_child_argv(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(supervisor, "local_gpu_count", lambda: 8)
    monkeypatch.setattr(supervisor, "child_argv", fake_child_argv)
    monkeypatch.setattr(supervisor, "run_claim", lambda **kw: SimpleNamespace(pk=1, kind="sft"))
    monkeypatch.setattr(supervisor, "run_output_path", lambda run: tmp_path)
    monkeypatch.setattr(supervisor, "_prepare", lambda **kw: (tmp_path / "config.json", None))
    monkeypatch.setattr(supervisor, "run_cancel_requested", lambda **kw: False)
    settings.TRAINING_ACCELERATE_CONFIG = ""
    settings.TRAINING_ACCELERATE_STRATEGY = "zero2"
    settings.TRAINING_CHILD_COMMAND = None
    with pytest.raises(RuntimeError, match="stop here"):
        supervisor.run_execute(run_id=1)
    assert seen["accelerate_config"].endswith("config/accelerate/zero2/8gpu.yaml") and seen["gpu_count"] == 0


class FakeAccelerator:
    """An accelerate stand-in that records prepare calls, under a chosen distributed type."""

    def __init__(self, kind="NO", *, stage=0, processes=1):
        self.distributed_type = SimpleNamespace(value=kind)
        self.num_processes = processes
        self.prepared: list[tuple] = []
        self.synced: list = []
        self.state = SimpleNamespace(deepspeed_plugin=SimpleNamespace(
            zero_stage=stage, deepspeed_config={"zero_optimization": {"stage": stage}}))
        self.device = torch.device("cpu")
        self.backwards = []

    def prepare(self, *objects):
        self.prepared.append(objects)
        return objects if len(objects) > 1 else objects[0]

    @contextlib.contextmanager
    def no_sync(self, model):
        self.synced.append(model)
        yield

    def backward(self, loss):
        self.backwards.append(float(loss))

    def get_state_dict(self, model, unwrap=True):
        return {"gathered": True}


def test_deepspeed_prepares_each_model_with_its_own_optimizer_in_its_own_call():
    policy, value = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    opt_p, opt_v = torch.optim.Adam(policy.parameters()), torch.optim.Adam(value.parameters())
    ds = FakeAccelerator("DEEPSPEED", stage=2, processes=2)
    distributed.prepare_pairs(ds, [(policy, opt_p), (value, opt_v)])
    assert ds.prepared == [(policy, opt_p), (value, opt_v)]
    plain = FakeAccelerator("MULTI_GPU", processes=2)
    distributed.prepare_pairs(plain, [(policy, opt_p), (value, opt_v)])
    assert plain.prepared == [(policy, opt_p, value, opt_v)]


def test_ppo_builds_one_optimizer_normally_and_one_per_model_under_deepspeed():
    from training.ml.configs import PPOConfig

    config = PPOConfig(warmup_steps=2, learning_rate=1e-3)
    policy, value = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    single, _ = _optimizers(config, policy, value, accelerator=FakeAccelerator(), total_steps=10)
    assert isinstance(single, torch.optim.Adam) and len(single.param_groups[0]["params"]) == 4
    pair, schedules = _optimizers(config, policy, value, accelerator=FakeAccelerator("DEEPSPEED", stage=3), total_steps=10)
    assert isinstance(pair, OptimizerPair) and isinstance(schedules, SchedulerPair)
    pair.step()
    schedules.step()
    assert pair.policy.param_groups[0]["lr"] == pair.value.param_groups[0]["lr"] == schedules.get_last_lr()[0]
    restored, _ = _optimizers(config, policy, value, accelerator=FakeAccelerator("DEEPSPEED", stage=3), total_steps=10)
    restored.load_state_dict(pair.state_dict())


def test_deepspeed_config_gets_the_batch_figures_no_dataloader_would_give_it():
    ds = FakeAccelerator("DEEPSPEED", stage=3, processes=4)
    distributed.configure_deepspeed(ds, micro_batch_size=2, grad_accum=4, max_grad_norm=0.0)
    config = ds.state.deepspeed_plugin.deepspeed_config
    assert (config["train_micro_batch_size_per_gpu"], config["gradient_accumulation_steps"], config["train_batch_size"]) == (2, 4, 32)
    assert config["gradient_clipping"] == 0.0  # the run's max_grad_norm (the paper preset clips nothing)
    assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    plain = FakeAccelerator()
    distributed.configure_deepspeed(plain, micro_batch_size=2, grad_accum=4)
    assert "train_micro_batch_size_per_gpu" not in plain.state.deepspeed_plugin.deepspeed_config


def test_only_sharded_weights_are_gathered_for_saving():
    model = torch.nn.Linear(2, 2)
    assert distributed.full_state_dict(FakeAccelerator("MULTI_GPU", processes=2), model) is None
    assert distributed.full_state_dict(FakeAccelerator("DEEPSPEED", stage=2), model) is None
    assert distributed.full_state_dict(FakeAccelerator("DEEPSPEED", stage=3), model) == {"gathered": True}
    assert distributed.full_state_dict(FakeAccelerator("FSDP"), model) == {"gathered": True}
    assert distributed.optimizer_is_sharded(FakeAccelerator("DEEPSPEED", stage=2))
    assert not distributed.optimizer_is_sharded(FakeAccelerator("MULTI_GPU", processes=8))


def test_gradients_sync_only_at_the_updates_last_micro_batch_under_ddp():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    ddp = FakeAccelerator("MULTI_GPU", processes=2)
    with distributed.no_sync(ddp, (a, b), sync=False):
        pass
    assert ddp.synced == [a, b]
    with distributed.no_sync(ddp, (a, b), sync=True):
        pass
    assert ddp.synced == [a, b]  # the last micro-batch all-reduces
    single = FakeAccelerator()
    with distributed.no_sync(single, (a, b), sync=False):
        pass
    assert single.synced == []


def test_under_deepspeed_each_engine_takes_its_own_loss_and_steps():
    calls = []

    class Engine:
        def __init__(self, name):
            self.name = name

        def backward(self, loss):
            calls.append((self.name, "backward", round(float(loss), 6)))

        def step(self):
            calls.append((self.name, "step"))

    ones = torch.ones(1, 3)
    losses = ppo_losses(ones * 0, ones * 0, ones, ones * 2, ones, ones * 3, ones, clip_range=0.2, clip_range_value=0.2)
    backward(losses, accelerator=FakeAccelerator("DEEPSPEED", stage=2), policy_model=Engine("policy"),
             value_model=Engine("value"), vf_coef=0.5, micro_steps=4)
    # pg: -advantage x ratio 1; vf: half the larger of (2 - 3)^2 and (1 + 0.2 clip - 3)^2 = 3.24, x vf_coef.
    assert calls == [("policy", "backward", -1.0), ("value", "backward", 0.5 * 0.5 * 3.24),
                     ("policy", "step"), ("value", "step")]
    plain = FakeAccelerator()
    backward(losses, accelerator=plain, policy_model=None, value_model=None, vf_coef=0.5, micro_steps=4)
    assert plain.backwards == [pytest.approx((-1.0 + 0.81) / 4)]


def test_lora_is_refused_with_sharded_weights_naming_the_setting():
    from training.ml.configs import ConfigError, PPOConfig
    from training.ml.ppo import _check_memory_savers

    _check_memory_savers(PPOConfig(lora_r=8), FakeAccelerator("DEEPSPEED", stage=2))
    with pytest.raises(ConfigError) as refused:
        _check_memory_savers(PPOConfig(lora_r=8), FakeAccelerator("FSDP"))
    assert refused.value.field == "lora_r"
