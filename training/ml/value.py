"""The value model: a separate network that predicts the return at each response token.

As in the paper, the value model shares no weights with the policy: it is its
own transformer (an encoder-decoder for T5 policies, a decoder-only model for
causal ones) with a two-layer MLP head on the hidden state at each response
position. `values[b, t]` estimates the return from the state before token
`response[b, t]` is chosen, so it lines up with the policy's `logprobs[b, t]`.

Saved as the transformer's own files plus `value_head.pt`, so `load` can also
start from a plain language model (the head is then freshly initialised).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from training.ml.policy import Batch, causal_inputs, shift_right

HEAD_FILE = "value_head.pt"


class ValueModel(nn.Module):
    def __init__(self, trunk: nn.Module, *, is_seq2seq: bool):
        super().__init__()
        self.trunk = trunk
        self.is_seq2seq = is_seq2seq
        config = trunk.config
        hidden = int(getattr(config, "d_model", None) or getattr(config, "hidden_size", None) or config.n_embd)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        # Small initial outputs keep the first value losses from swamping the policy loss.
        nn.init.normal_(self.head[2].weight, std=1.0 / (hidden + 1) ** 0.5 * 0.1)
        nn.init.zeros_(self.head[2].bias)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: torch.device | str = "cpu") -> "ValueModel":
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(str(path))
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        trunk = AutoModel.from_pretrained(str(path))
        model = cls(trunk, is_seq2seq=seq2seq)
        head_file = Path(path) / HEAD_FILE
        if head_file.is_file():
            model.head.load_state_dict(torch.load(head_file, map_location="cpu", weights_only=True))
        return model.to(device)

    def save(self, directory: str | os.PathLike, *, state_dict: dict | None = None) -> Path:
        """The trunk's files and the head (`state_dict`: this module's, gathered from shards)."""
        from training.ml.memory import save_pretrained_full

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        trunk = head = None
        if state_dict is not None:
            trunk = {k[len("trunk."):]: v for k, v in state_dict.items() if k.startswith("trunk.")}
            head = {k[len("head."):]: v for k, v in state_dict.items() if k.startswith("head.")}
        save_pretrained_full(self.trunk, out, state_dict=trunk)
        torch.save(head if head is not None else self.head.state_dict(), out / HEAD_FILE)
        return out

    def load_head(self, directory: str | os.PathLike) -> None:
        self.head.load_state_dict(torch.load(Path(directory) / HEAD_FILE, map_location="cpu", weights_only=True))

    @property
    def decoder_start_id(self) -> int:
        config = self.trunk.config
        start = getattr(config, "decoder_start_token_id", None)
        return int(start if start is not None else (config.pad_token_id or 0))

    def forward(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response_ids: torch.Tensor,
                response_mask: torch.Tensor) -> torch.Tensor:
        """Values at each response position, `[B, L]`, zero where the response is padding.

        Plain tensors in, so a DistributedDataParallel wrapper can pass them through.
        """
        prompts = Batch(prompt_ids, prompt_mask)
        if self.is_seq2seq:
            out = self.trunk(
                input_ids=prompts.input_ids,
                attention_mask=prompts.attention_mask,
                decoder_input_ids=shift_right(response_ids, self.decoder_start_id),
            )
            hidden = out.last_hidden_state
        else:
            out = self.trunk(**causal_inputs(prompts, response_ids, response_mask))
            width = prompts.input_ids.shape[1]
            hidden = out.last_hidden_state[:, width - 1 : width - 1 + response_ids.shape[1]]
        return self.head(hidden.float()).squeeze(-1) * response_mask
