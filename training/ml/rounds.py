"""A new annotation round from a trained policy: sample K answers per prompt, score their segments.

The loop of the paper closes here: a policy trained on feedback answers new
questions, and the answers go back to annotators. For each prompt the policy
samples K answers with its run's sampling settings (PPO's `top_k`, `top_p`,
`temperature`, `max_new_tokens`; SFT, which has none, gets the paper's
rollout settings). Each answer is scored by whichever reward models the run
names: R1 at each sub-sentence, R2 at each sentence, R3 and the holistic
preference model on the whole answer. Segments carry character offsets into
the stored (outer-whitespace-stripped) answer, found from the sampled token
ids exactly as PPO places its rewards (training/ml/rewards.py), so what an
annotator sees beside an answer is what the policy was trained on.

Pure: no Django. `generate_round` reports progress through a callback and
returns plain dicts; the web side (training/rounds.py) stores them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation.qa.vocab import NO_ERROR, RESPONSES
from training.ml.data import Example
from training.ml.reward_models import answer_words_from_segments, preference_rm_text, token_rm_words
from training.ml.rewards import Segmentation, _passages, defuse, segment_generation, token_char_spans

# Model names stored with each segment: the config field that named the reward model, without `_model`.
RELEVANCE, FACTUALITY, COMPLETENESS, PREFERENCE = "rm_relevance", "rm_factuality", "rm_completeness", "rm_preference"
MAX_SAMPLES = len(RESPONSES)  # an example holds at most four answers


@dataclass(frozen=True)
class SamplingSettings:
    """How a round samples: the policy run's rollout settings."""

    samples: int
    max_input_len: int = 1024
    max_new_tokens: int = 200
    top_k: int = 20
    top_p: float = 1.0
    temperature: float = 0.7
    batch_size: int = 8
    seed: int = 42


@dataclass(frozen=True)
class RewardWeights:
    """Rewards per judged segment, as the PPO run placed them (its config; the paper's by default)."""

    relevance_positive: float = 0.3
    relevance_negative: float = -0.3
    factuality_positive: float = 0.5
    factuality_negative: float = -0.5
    completeness_scale: float = 0.3


def sampling_settings(config: Mapping[str, Any], *, samples: int) -> SamplingSettings:
    """The round's sampling settings from a run's config (PPO: its rollout; SFT: its lengths, paper sampling)."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be 1 to {MAX_SAMPLES} (an example holds at most {MAX_SAMPLES} responses), got {samples}")
    defaults = SamplingSettings(samples=samples)
    max_new = config.get("max_new_tokens") or config.get("max_output_len") or defaults.max_new_tokens
    return SamplingSettings(
        samples=samples,
        max_input_len=int(config.get("max_input_len") or defaults.max_input_len),
        max_new_tokens=int(max_new),
        top_k=int(config.get("top_k", defaults.top_k) or 0),
        top_p=float(config.get("top_p", defaults.top_p) or 1.0),
        temperature=float(config.get("temperature", defaults.temperature) or defaults.temperature),
        batch_size=int(config.get("generation_batch_size") or config.get("eval_batch_size") or defaults.batch_size),
        seed=int(config.get("seed", defaults.seed)),
    )


def reward_weights(config: Mapping[str, Any]) -> RewardWeights:
    d = RewardWeights()
    return RewardWeights(
        relevance_positive=float(config.get("relevance_positive_reward", d.relevance_positive)),
        relevance_negative=float(config.get("relevance_negative_reward", d.relevance_negative)),
        factuality_positive=float(config.get("factuality_positive_reward", d.factuality_positive)),
        factuality_negative=float(config.get("factuality_negative_reward", d.factuality_negative)),
        completeness_scale=float(config.get("completeness_reward_scale", d.completeness_scale)),
    )


def reward_model_paths(config: Mapping[str, Any]) -> dict[str, str]:
    """The reward models a run's config names that exist as folders: {model name: path}."""
    out = {}
    for name in (RELEVANCE, FACTUALITY, COMPLETENESS, PREFERENCE):
        path = str(config.get(f"{name}_model") or "").strip()
        if path and Path(path).is_dir():
            out[name] = path
    return out


# ---------------------------------------------------------------- segments with offsets


def _shift(start: int, end: int, lead: int, length: int) -> tuple[int, int]:
    return max(0, min(length, start - lead)), max(0, min(length, end - lead))


def segment_rewards(
    *,
    text: str,
    split: Segmentation,
    relevance: Sequence[str] | None,
    factuality: Sequence[str] | None,
    completeness: float | None,
    preference: float | None,
    weights: RewardWeights,
) -> list[dict]:
    """Per-segment rewards of one answer: [{"start", "end", "reward", "label", "model"}].

    Offsets are into `text.strip()` (what is stored), the segmentation's
    offsets being into `text`. R1 and R2 give one entry per sub-sentence and
    sentence, labelled `O` or their error tag; R3 and the preference model
    one entry over the whole answer.
    """
    stored = text.strip()
    lead = len(text) - len(text.lstrip())
    out: list[dict] = []
    for model, segments, labels, good, bad in (
        (RELEVANCE, split.subsentences, relevance, weights.relevance_positive, weights.relevance_negative),
        (FACTUALITY, split.sentences, factuality, weights.factuality_positive, weights.factuality_negative),
    ):
        if labels is None:
            continue
        for segment, label in zip(segments, labels, strict=True):
            start, end = _shift(segment.start, segment.end, lead, len(stored))
            if end > start:
                out.append({"start": start, "end": end, "reward": good if label == NO_ERROR else bad,
                            "label": label, "model": model})
    if stored:
        if completeness is not None:
            out.append({"start": 0, "end": len(stored), "reward": weights.completeness_scale * completeness,
                        "label": "completeness", "model": COMPLETENESS})
        if preference is not None:
            out.append({"start": 0, "end": len(stored), "reward": preference, "label": "preference", "model": PREFERENCE})
    return out


class RoundScorer:
    """The reward models of a run, loaded once, scoring sampled answers segment by segment."""

    def __init__(self, *, paths: Mapping[str, str], weights: RewardWeights, nlp: Any, device: Any = "cpu"):
        from training.ml.reward_models import PreferenceRewardModel, TokenRewardModel

        self.weights = weights
        self.nlp = nlp
        self.models: dict[str, Any] = {}
        for name, path in paths.items():
            loader = TokenRewardModel if name in (RELEVANCE, FACTUALITY) else PreferenceRewardModel
            self.models[name] = loader.load(path, device=device)

    @property
    def names(self) -> list[str]:
        return sorted(self.models)

    def __call__(self, examples: Sequence[Example], decoded: Sequence[tuple[str, list[tuple[int, int]]]]) -> list[list[dict]]:
        """Segments of each answer; `decoded` is (text, per-token character spans) from the sampled ids."""
        splits = [segment_generation(self.nlp, text, spans) for text, spans in decoded]
        r1_in, r2_in, seq_in = [], [], []
        for example, (text, _), split in zip(examples, decoded, splits, strict=True):
            question = defuse(example.question)
            r1_in.append(token_rm_words(question=question, passages=None, answer_words=answer_words_from_segments(
                [[defuse(w) for w in s.words] for s in split.subsentences])))
            r2_in.append(token_rm_words(question=question, passages=_passages(example), answer_words=answer_words_from_segments(
                [[defuse(w) for w in s.words] for s in split.sentences])))
            seq_in.append(preference_rm_text(question=question, passages=_passages(example), answer=defuse(text)))
        none = [None] * len(decoded)
        r1 = self.models[RELEVANCE].predict(r1_in) if RELEVANCE in self.models else none
        r2 = self.models[FACTUALITY].predict(r2_in) if FACTUALITY in self.models else none
        r3 = self.models[COMPLETENESS].normalized(seq_in) if COMPLETENESS in self.models else none
        pref = self.models[PREFERENCE].normalized(seq_in) if PREFERENCE in self.models else none
        return [
            segment_rewards(text=text, split=split, relevance=a, factuality=b, completeness=c, preference=d, weights=self.weights)
            for (text, _), split, a, b, c, d in zip(decoded, splits, r1, r2, r3, pref, strict=True)
        ]


# ---------------------------------------------------------------- the round


def generate_round(
    *,
    policy_path: str,
    examples: Sequence[Example],
    settings: SamplingSettings,
    reward_paths: Mapping[str, str] | None = None,
    weights: RewardWeights = RewardWeights(),
    sentence_splitter: str = "sentencizer",
    progress: Callable[[int, int], None] = lambda done, total: None,
    device: Any = None,
) -> list[list[dict]]:
    """K sampled answers per example: `[[{"text", "reward_segments"}, ...K], ...]`, in the examples' order.

    `progress(done, total)` is called after each batch (total = examples * K
    answers, then once more after scoring).
    """
    import torch

    from annotation.qa.text import load_splitter
    from training.ml.policy import Policy

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(settings.seed)
    policy = Policy.load(policy_path, device=device)
    nlp, _ = load_splitter(sentence_splitter)
    scorer = RoundScorer(paths=reward_paths or {}, weights=weights, nlp=nlp, device=device) if reward_paths else None
    k = settings.samples
    total = len(examples) * k
    out: list[list[dict]] = []
    done = 0
    progress(0, total)
    for start in range(0, len(examples), settings.batch_size):
        chunk = list(examples[start : start + settings.batch_size])
        prompts = policy.encode_prompts([e.text for e in chunk], max_input_len=settings.max_input_len,
                                        max_new_tokens=settings.max_new_tokens).repeat_interleave(k)
        ids, mask = policy.generate(prompts, max_new_tokens=settings.max_new_tokens, do_sample=True,
                                    top_k=settings.top_k, top_p=settings.top_p, temperature=settings.temperature)
        decoded = [token_char_spans(policy.tokenizer, ids[row][mask[row].bool()].tolist()) for row in range(ids.shape[0])]
        repeated = [e for e in chunk for _ in range(k)]
        segments = scorer(repeated, decoded) if scorer is not None else [[] for _ in decoded]
        for i in range(len(chunk)):
            out.append([{"text": decoded[i * k + j][0].strip(), "reward_segments": segments[i * k + j]} for j in range(k)])
        done += len(chunk) * k
        progress(done, total)
    return out
