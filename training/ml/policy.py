"""The policy: a seq2seq (T5 family) or causal (GPT-2 style) language model behind one interface.

PPO and evaluation need three things from a policy: sample responses to a
batch of prompts, greedy-decode them, and score given response tokens (log
probabilities, entropy). Both model families are handled here so the trainer
never branches on the architecture.

Shapes: prompts are `[B, P]` ids with an attention mask; responses are
`[B, L]` ids with a mask that is 1 up to and including the first end-of-text
token and 0 after it. Everything is computed for the response positions only:
`logprobs[b, t]` is log pi(response[b, t] | prompt[b], response[b, :t]).

Causal prompts are left-padded and end in the end-of-text token, which marks
where the answer begins; seq2seq prompts are right-padded for the encoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def is_seq2seq_path(path: str | os.PathLike) -> bool:
    from transformers import AutoConfig

    return bool(getattr(AutoConfig.from_pretrained(str(path)), "is_encoder_decoder", False))


def load_tokenizer(path: str | os.PathLike):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token_id is None:
        # GPT-2 ships without a pad token; padding is always masked, so eos serves.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model under a DistributedDataParallel (or similar) wrapper."""
    return getattr(model, "module", model)


@dataclass
class Batch:
    """Prompt tensors for one batch of policy inputs."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device))

    def repeat_interleave(self, n: int) -> "Batch":
        return Batch(self.input_ids.repeat_interleave(n, dim=0), self.attention_mask.repeat_interleave(n, dim=0))

    def rows(self, index: slice | torch.Tensor) -> "Batch":
        return Batch(self.input_ids[index], self.attention_mask[index])

    def trimmed(self, *, left_padded: bool) -> "Batch":
        """Without the padding columns that no row of this batch uses."""
        width = max(1, int(self.attention_mask.sum(dim=1).max()))
        if left_padded:
            return Batch(self.input_ids[:, -width:], self.attention_mask[:, -width:])
        return Batch(self.input_ids[:, :width], self.attention_mask[:, :width])


def response_mask_from_ids(ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 for every token up to and including the first eos, 0 after it."""
    is_eos = (ids == eos_token_id).long()
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos
    return (eos_before == 0).long()


class Policy:
    """A language model and its tokenizer, with sampling and scoring of responses."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, is_seq2seq: bool):
        self.model = model
        self.tokenizer = tokenizer
        self.is_seq2seq = is_seq2seq
        if is_seq2seq:
            tokenizer.padding_side = "right"  # encoder inputs; causal prompts are padded by hand on the left

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: torch.device | str = "cpu") -> "Policy":
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        seq2seq = is_seq2seq_path(path)
        model_cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        model = model_cls.from_pretrained(str(path)).to(device)
        return cls(model, load_tokenizer(path), is_seq2seq=seq2seq)

    # -- helpers ---------------------------------------------------------
    @property
    def bare(self) -> torch.nn.Module:
        return unwrap(self.model)

    @property
    def device(self) -> torch.device:
        return next(self.bare.parameters()).device

    @property
    def eos_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def max_prompt_tokens(self, max_input_len: int, max_new_tokens: int) -> int:
        """Prompt budget: a causal model must fit prompt and response in its position table."""
        if self.is_seq2seq:
            return max_input_len
        positions = getattr(self.bare.config, "max_position_embeddings", None) or getattr(self.bare.config, "n_positions", None)
        if positions:
            return max(2, min(max_input_len, int(positions) - max_new_tokens))
        return max_input_len

    def encode_prompts(self, texts: list[str], *, max_input_len: int, max_new_tokens: int = 0) -> Batch:
        limit = self.max_prompt_tokens(max_input_len, max_new_tokens)
        if self.is_seq2seq:
            enc = self.tokenizer(texts, max_length=limit, truncation=True, padding=True, return_tensors="pt")
            return Batch(enc["input_ids"], enc["attention_mask"])
        rows = [self.causal_prompt_ids(text, limit) for text in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding: every prompt ends at the same column
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
        return Batch(ids, mask)

    def causal_prompt_ids(self, text: str, limit: int) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: max(1, limit - 1)]
        return list(ids) + [self.eos_token_id]

    # -- generation ------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts: Batch,
        *,
        max_new_tokens: int,
        do_sample: bool,
        top_k: int = 0,
        top_p: float = 1.0,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample (or greedy-decode) one response per prompt row: `(response_ids, response_mask)`."""
        model = self.bare
        was_training = model.training
        model.eval()
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.pad_token_id,
            "eos_token_id": self.eos_token_id,
            "do_sample": do_sample,
        }
        if do_sample:
            kwargs.update(top_k=top_k or None, top_p=top_p, temperature=temperature)
        else:
            kwargs.update(num_beams=1)
        prompts = prompts.to(self.device)
        out = model.generate(input_ids=prompts.input_ids, attention_mask=prompts.attention_mask, **kwargs)
        if was_training:
            model.train()
        # seq2seq outputs start with the decoder start token; causal ones repeat the prompt.
        response = out[:, 1:] if self.is_seq2seq else out[:, prompts.input_ids.shape[1]:]
        if response.shape[1] == 0:
            response = torch.full((out.shape[0], 1), self.eos_token_id, dtype=out.dtype, device=out.device)
        mask = response_mask_from_ids(response, self.eos_token_id)
        response = response.masked_fill(mask == 0, self.pad_token_id)
        return response, mask

    # -- scoring ---------------------------------------------------------
    def logits(self, prompts: Batch, response_ids: torch.Tensor, response_mask: torch.Tensor, *, model: torch.nn.Module | None = None) -> torch.Tensor:
        """Next-token logits at each response position, `[B, L, V]`.

        `model` is the module to call (the DDP-wrapped one during training, so
        gradients are synchronised); it defaults to `self.model`.
        """
        return response_logits(model or self.model, self.is_seq2seq, prompts, response_ids, response_mask, self.decoder_start_id)

    @property
    def decoder_start_id(self) -> int:
        start = getattr(self.bare.config, "decoder_start_token_id", None)
        return int(start if start is not None else self.pad_token_id)

    def score(
        self,
        prompts: Batch,
        response_ids: torch.Tensor,
        response_mask: torch.Tensor,
        *,
        temperature: float = 1.0,
        model: torch.nn.Module | None = None,
        with_entropy: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probabilities of the given response tokens (and per-token entropy) under `temperature`."""
        logits = self.logits(prompts, response_ids, response_mask, model=model).float() / temperature
        logp_all = F.log_softmax(logits, dim=-1)
        logprobs = torch.gather(logp_all, 2, response_ids.unsqueeze(-1)).squeeze(-1) * response_mask
        entropy = None
        if with_entropy:
            entropy = -(logp_all.exp() * logp_all).sum(-1) * response_mask
        return logprobs, entropy

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def save(self, directory: str | os.PathLike, *, state_dict: dict | None = None) -> Path:
        """Full weights (`state_dict`: gathered from shards; a LoRA policy merged, its adapter beside them)."""
        from training.ml.memory import save_pretrained_full

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_pretrained_full(self.bare, out, state_dict=state_dict)
        self.tokenizer.save_pretrained(out)
        return out


def shift_right(ids: torch.Tensor, start_id: int) -> torch.Tensor:
    """Decoder inputs for teacher forcing: the start token, then every token but the last."""
    start = torch.full((ids.shape[0], 1), start_id, dtype=ids.dtype, device=ids.device)
    return torch.cat([start, ids[:, :-1]], dim=1)


def causal_inputs(prompts: Batch, response_ids: torch.Tensor, response_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Prompt and response as one left-padded causal sequence, with positions that skip the padding."""
    ids = torch.cat([prompts.input_ids, response_ids], dim=1)
    mask = torch.cat([prompts.attention_mask, response_mask.to(prompts.attention_mask.dtype)], dim=1)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions}


def response_logits(
    model: torch.nn.Module,
    is_seq2seq: bool,
    prompts: Batch,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    decoder_start_id: int,
) -> torch.Tensor:
    if is_seq2seq:
        out = model(
            input_ids=prompts.input_ids,
            attention_mask=prompts.attention_mask,
            decoder_input_ids=shift_right(response_ids, decoder_start_id),
        )
        return out.logits
    inputs = causal_inputs(prompts, response_ids, response_mask)
    out = model(**inputs)
    width = prompts.input_ids.shape[1]
    # The logit at position i predicts token i + 1, so the response starts at the prompt's last column.
    return out.logits[:, width - 1 : width - 1 + response_ids.shape[1]]
