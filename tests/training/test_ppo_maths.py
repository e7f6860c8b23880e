"""PPO's maths against numbers worked out by hand: ratio, clipped losses, micro-batch averaging, KL early stop.

The end-to-end runs in test_ppo.py only show that training runs; these pin what
each update computes (paper section 4, FINE_GRAINED_RLHF.md section 4), so a
refactor of the loop cannot quietly change it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import pytest
import torch

from training.ml.policy import Batch
from training.ml.ppo import PPOConfig, Rollout, answer_kl_sum, kl_exceeded, ppo_losses, ppo_update

E_HALF = math.exp(0.5)  # 1.6487212707
E_MINUS_HALF = math.exp(-0.5)  # 0.6065306597


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def losses(**overrides):
    """One row of five tokens; the fifth is padding (mask 0) with values that would change every mean."""
    values = {
        "new_logprobs": t([0.5, -0.5, -0.5, 0.5, 3.0]),
        "old_logprobs": t([0.0, 0.0, 0.0, 0.0, 0.0]),
        "advantages": t([1.0, -2.0, 1.0, -1.0, 10.0]),
        "new_values": t([0.5, -0.1, 0.7, 0.5, 9.0]),
        "old_values": t([0.0, 0.0, 1.0, 0.0, 0.0]),
        "returns": t([1.0, 0.0, 0.0, 0.3, -9.0]),
        "mask": t([1.0, 1.0, 1.0, 1.0, 0.0]),
    }
    values.update(overrides)
    return ppo_losses(**values, clip_range=0.2, clip_range_value=0.2)


def test_the_probability_ratio_is_exp_of_the_log_prob_difference_and_one_on_padding():
    out = losses()

    # log ratio = new - old = 0.5, -0.5, -0.5, 0.5 on the answer; the padded token's difference (3) is masked to 0.
    assert out.ratio[0].tolist() == pytest.approx([E_HALF, E_MINUS_HALF, E_MINUS_HALF, E_HALF, 1.0])


def test_the_policy_loss_is_the_pessimistic_of_the_clipped_and_unclipped_objectives():
    out = losses()

    # Per token, max(-A * r, -A * clip(r, 0.8, 1.2)):
    #   A =  1, r = 1.6487: max(-1.6487, -1.2)  = -1.2        (clipped: no credit beyond 1 + eps)
    #   A = -2, r = 0.6065: max( 1.2131,  1.6)  =  1.6        (clipped: no credit below 1 - eps)
    #   A =  1, r = 0.6065: max(-0.6065, -0.8)  = -0.6065     (unclipped: a worse ratio is never forgiven)
    #   A = -1, r = 1.6487: max( 1.6487,  1.2)  =  1.6487     (unclipped)
    # mean over the four answer tokens = (-1.2 + 1.6 - 0.6065307 + 1.6487213) / 4 = 0.3605477
    assert out.pg_loss.item() == pytest.approx(0.3605477, abs=1e-6)
    # Every ratio is 0.5 away in log space, outside [0.8, 1.2]: all four count as clipped.
    assert out.clipfrac.item() == pytest.approx(1.0)
    # (r - 1) - log r: 0.6487213 - 0.5 = 0.1487213 (twice) and -0.3934693 + 0.5 = 0.1065307 (twice); mean 0.1276260
    assert out.approx_kl.item() == pytest.approx(0.1276260, abs=1e-6)


def test_no_clipping_inside_the_trust_region():
    out = losses(new_logprobs=t([0.1, -0.1, 0.0, 0.0, 0.0]))

    # r = e^0.1 = 1.1051709 and e^-0.1 = 0.9048374 stay inside [0.8, 1.2]; the last two tokens have r = 1.
    # -A * r = -1.1051709, 1.8096748, -1, 1; mean = 0.7045039 / 4 = 0.1761260
    assert out.pg_loss.item() == pytest.approx((-1.1051709 + 1.8096748 - 1.0 + 1.0) / 4, abs=1e-6)
    assert out.clipfrac.item() == 0.0


def test_the_value_loss_is_the_larger_of_the_clipped_and_unclipped_squared_errors():
    out = losses()

    # V_clip = V_old + clip(V_new - V_old, -0.2, 0.2); per token max((V_new - R)^2, (V_clip - R)^2):
    #   old 0, new  0.5, R 1:   V_clip = 0.2: max(0.25, 0.64) = 0.64   (a clipped move toward R is not credited)
    #   old 0, new -0.1, R 0:   V_clip = -0.1: max(0.01, 0.01) = 0.01  (inside the clip range)
    #   old 1, new  0.7, R 0:   V_clip = 0.8: max(0.49, 0.64) = 0.64
    #   old 0, new  0.5, R 0.3: V_clip = 0.2: max(0.04, 0.01) = 0.04   (overshooting R is not forgiven)
    # vf_loss = 0.5 * (0.64 + 0.01 + 0.64 + 0.04) / 4 = 0.16625
    assert out.vf_loss.item() == pytest.approx(0.16625, abs=1e-6)


def test_per_answer_kl_sums_over_tokens():
    logprobs = t([-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0])
    ref = t([-1.5, -1.0, -3.0], [-1.0, -1.0, -9.0])
    mask = t([1.0, 1.0, 1.0], [1.0, 1.0, 0.0])

    # Row 1: 0.5 - 1 + 0 = -0.5; row 2: 0.5 + 0.5 (the padded -9 difference is masked) = 1.0.
    assert answer_kl_sum(logprobs, ref, mask) == pytest.approx(0.5)


def test_the_kl_threshold_is_a_strict_bound_and_zero_turns_it_off():
    assert not kl_exceeded(10.0, 10.0)
    assert kl_exceeded(10.01, 10.0)
    assert not kl_exceeded(1e9, 0.0)


# ---------------------------------------------------------------- whole updates, with one-parameter models


class ConstantPolicy(torch.nn.Module):
    """log pi(y_t) = theta for every answer token: its gradients are sums we can work out by hand."""

    is_seq2seq = True

    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(()))
        self.forward_passes = 0

    def score(self, prompts, response, mask, *, temperature, model, with_entropy):
        self.forward_passes += 1
        return model.theta * mask, torch.zeros_like(mask)


class ConstantValue(torch.nn.Module):
    """V(s_t) = phi at every answer token."""

    def __init__(self):
        super().__init__()
        self.phi = torch.nn.Parameter(torch.zeros(()))

    def forward(self, prompt_ids, prompt_mask, response, mask):
        return self.phi * mask


class OneProcess:
    num_processes = 1
    device = torch.device("cpu")

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def clip_grad_norm_(self, parameters, max_norm):
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def update(**config):
    """One rollout of four two-token answers through `ppo_update`, with SGD at lr 1 (so a step is minus the gradient)."""
    policy, value = ConstantPolicy(), ConstantValue()
    mask = torch.ones(4, 2)
    data = Rollout(
        prompts=Batch(torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long)),
        response=torch.ones(4, 2, dtype=torch.long),
        mask=mask,
        logprobs=torch.zeros(4, 2),
        ref_logprobs=torch.full((4, 2), -1.0),
        values=torch.zeros(4, 2),
        scores=torch.zeros(4, 2),
        results=[],
    )
    advantages = t([1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0])
    returns = t([1.0, 1.0], [1.0, 1.0], [3.0, 3.0], [3.0, 3.0])
    settings = dataclasses.replace(PPOConfig(), ppo_epochs=1, train_batch_size=4, micro_batch_size=2, clip_range=0.2,
                                   clip_range_value=0.2, vf_coef=1.0, max_grad_norm=0.0, kl_threshold=0.0, seed=0)
    settings = dataclasses.replace(settings, **config)
    optimizer = torch.optim.SGD([policy.theta, value.phi], lr=1.0)
    stats = ppo_update(data, advantages, returns, step=0, policy=policy, policy_model=policy, value_model=value,
                       optimizer=optimizer, accelerator=OneProcess(), config=settings)
    return policy, value, stats


def test_micro_batch_losses_are_averaged_into_one_update_not_summed():
    policy, value, stats = update()

    # Two micro-batches of two answers make the one update of the epoch. At theta = 0 every ratio is 1,
    # so d pg_loss / d theta = -mean(A) over a micro-batch, and d vf_loss / d phi = mean(phi - R) = -mean(R).
    # Averaged over the two micro-batches (each has four tokens): -mean(A) = -(1+2+3+4)/4 = -2.5 and
    # -mean(R) = -(1+1+3+3)/4 = -2. One SGD step at lr 1 moves theta to 2.5 and phi to 2
    # (summing the micro-batches would give 5 and 4).
    assert policy.theta.item() == pytest.approx(2.5)
    assert value.phi.item() == pytest.approx(2.0)
    assert policy.forward_passes == 2
    # The reported losses are means over the micro-batches too: pg = -mean(A) = -2.5,
    # vf = 0.5 * mean(R^2) = 0.5 * (1 + 1 + 9 + 9) / 4 = 2.5.
    assert stats["pg_loss"] == pytest.approx(-2.5)
    assert stats["vf_loss"] == pytest.approx(2.5)
    assert (stats["ppo_epochs"], stats["kl_early_stop"]) == (1.0, 0.0)


def test_kl_above_the_threshold_stops_the_remaining_epochs_of_the_rollout():
    # The reference gives every token log-prob -1. Epoch 1 runs at theta = 0: KL per answer = 2 tokens x (0 + 1) = 2.
    # Its update moves theta to 2.5 (as above), so epoch 2 measures 2 x (2.5 + 1) = 7.
    policy, _, stats = update(ppo_epochs=4, kl_threshold=3.0)
    assert (stats["ppo_epochs"], stats["kl_early_stop"]) == (2.0, 1.0)  # 2 <= 3 goes on, 7 > 3 stops: epochs 3-4 skipped
    assert policy.forward_passes == 2 * 2

    policy, _, stats = update(ppo_epochs=4, kl_threshold=1.5)
    assert (stats["ppo_epochs"], stats["kl_early_stop"]) == (1.0, 1.0)  # 2 > 1.5: stops after its first update
    assert policy.theta.item() == pytest.approx(2.5)

    policy, _, stats = update(ppo_epochs=4, kl_threshold=0.0)
    assert (stats["ppo_epochs"], stats["kl_early_stop"]) == (4.0, 0.0)  # 0 = no early stop
    assert policy.forward_passes == 4 * 2
