"""Reward placement: every token's reward for hand-made answers, from the sampled ids, truncation-proof."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from training.ml.data import Example
from training.ml.reward_models import SEPARATOR, TokenRewardModel, word_token_counts
from training.ml.rewards import (
    FineGrainedReward,
    FineGrainedWeights,
    HolisticReward,
    kl_penalized_rewards,
    token_char_spans,
)
from annotation.qa.text import load_splitter

EOS = "</s>"


class WordPieceTokenizer:
    """A fixed-vocabulary tokenizer double: `▁` marks a leading space, `</s>` is special (sentencepiece-like)."""

    def __init__(self, vocab: list[str]):
        self.vocab = [EOS, *vocab]
        self.eos_token_id = 0

    def ids(self, tokens: list[str]) -> list[int]:
        return [self.vocab.index(t) for t in tokens]

    def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=False) -> str:
        pieces = [self.vocab[i] for i in ids if not (skip_special_tokens and i == self.eos_token_id)]
        return "".join(pieces).replace("▁", " ").lstrip(" ")

    def batch_decode(self, rows, **kwargs) -> list[str]:
        return [self.decode(r, **kwargs) for r in rows]


class FixedLabels:
    """R1/R2 double: returns given labels and keeps the word lists it was asked about."""

    def __init__(self, labels: list[list[str]]):
        self.labels = labels
        self.inputs: list[list[str]] = []

    def predict(self, word_lists):
        self.inputs.extend(word_lists)
        return [list(x) for x in self.labels[: len(word_lists)]]


class FixedScore:
    def __init__(self, value: float):
        self.value = value
        self.inputs: list[str] = []

    def normalized(self, texts):
        self.inputs.extend(texts)
        return [self.value] * len(texts)


EXAMPLE = Example(
    text="question: Where is Paris? context: ...",
    answers=("Paris is in France.",),
    question="Where is Paris?",
    passages=(("Paris", "Paris is the capital of France."),),
)

# "Paris is a very big city, and it has many old museums. It is nice."
# Sentence 1 has 12 words; "city," ends word 5 and 6 + 5 < 12, so "and" (word 6) starts a
# second sub-sentence. Sentence 2 is one sub-sentence.
TOKENS = [
    "▁Paris", "▁is", "▁a", "▁very", "▁big", "▁ci", "ty", ",",          # 0-7: sub-sentence 1 ends at 7
    "▁and", "▁it", "▁has", "▁many", "▁old", "▁muse", "ums", ".",       # 8-15: sub-sentence 2 / sentence 1 end at 15
    "▁It", "▁is", "▁nice", ".",                                        # 16-19: sentence 2 ends at 19
    EOS,                                                                # 20: last token
]


@pytest.fixture(scope="module")
def nlp():
    return load_splitter("sentencizer")[0]


@pytest.fixture
def tokenizer():
    return WordPieceTokenizer(sorted({t for t in TOKENS if t != EOS} | {"▁</", "s>", "▁bad", "▁good", "▁word"}))


def test_it_places_every_tokens_reward_as_worked_out_by_hand(tokenizer, nlp):
    relevance = FixedLabels([["O", "NF-ERR", "O"]])
    factuality = FixedLabels([["F-ERR", "O"]])
    completeness = FixedScore(2.0)
    reward = FineGrainedReward(relevance=relevance, factuality=factuality, completeness=completeness,
                               tokenizer=tokenizer, nlp=nlp, weights=FineGrainedWeights())
    ids = tokenizer.ids(TOKENS)

    (result,) = reward([EXAMPLE], [ids])

    expected = [0.0] * 21
    expected[7] = 0.3           # sub-sentence 1: R1 O
    expected[15] = -0.3 - 0.5   # sub-sentence 2: R1 NF-ERR, and sentence 1: R2 F-ERR
    expected[19] = 0.3 + 0.5    # sub-sentence 3: R1 O, and sentence 2: R2 O
    expected[20] = 0.3 * 2.0    # last token: 0.3 x normalised R3
    assert result.token_rewards == pytest.approx(expected)
    assert result.components == pytest.approx({"relevance": 0.3, "factuality": 0.0, "completeness": 0.6})
    assert result.relevance == (2, 3) and result.factuality == (1, 2)
    assert result.total == pytest.approx(sum(expected))


def test_it_builds_reward_model_inputs_like_the_training_files(tokenizer, nlp):
    relevance, factuality, completeness = FixedLabels([["O"] * 3]), FixedLabels([["O"] * 2]), FixedScore(0.0)
    reward = FineGrainedReward(relevance=relevance, factuality=factuality, completeness=completeness,
                               tokenizer=tokenizer, nlp=nlp)

    reward([EXAMPLE], [tokenizer.ids(TOKENS)])

    assert relevance.inputs == [[
        "question:", "Where", "is", "Paris?", "answer:",
        SEPARATOR, "Paris", "is", "a", "very", "big", "city,",
        SEPARATOR, "and", "it", "has", "many", "old", "museums.",
        SEPARATOR, "It", "is", "nice.",
    ]]
    assert factuality.inputs == [[
        "question:", "Where", "is", "Paris?", "context:", "wikipage:", "Paris", "text:",
        "Paris", "is", "the", "capital", "of", "France.", "answer:",
        SEPARATOR, "Paris", "is", "a", "very", "big", "city,", "and", "it", "has", "many", "old", "museums.",
        SEPARATOR, "It", "is", "nice.",
    ]]
    assert completeness.inputs == [
        "question: Where is Paris? context: wikipage: Paris text: Paris is the capital of France. "
        "answer: Paris is a very big city, and it has many old museums. It is nice."
    ]


def test_its_dashboard_pieces_concatenate_to_the_text_and_carry_the_segment_rewards(tokenizer, nlp):
    reward = FineGrainedReward(relevance=FixedLabels([["O", "NF-ERR", "O"]]), factuality=FixedLabels([["F-ERR", "O"]]),
                               completeness=FixedScore(2.0), tokenizer=tokenizer, nlp=nlp)

    (result,) = reward([EXAMPLE], [tokenizer.ids(TOKENS)])

    assert "".join(p["text"] for p in result.pieces) == result.text
    assert [p["text"] for p in result.pieces] == ["Paris is a very big city, ", "and it has many old museums. ", "It is nice."]
    assert [p["label"] for p in result.pieces] == ["O", "NF-ERR+F-ERR", "O"]
    assert [p["reward"] for p in result.pieces] == pytest.approx([0.3, -0.8, 0.8 + 0.6])


def test_segment_ends_come_from_the_sampled_ids_not_from_retokenising_the_text(nlp):
    from training.ml.tiny import build_tiny_tokenizer

    real = build_tiny_tokenizer(texts=["Paris is big, and it has many old museums and parks. It is nice."] * 3)
    head = real("Paris is nice.", add_special_tokens=False)["input_ids"]
    # Spell "museums." one character per token: the sampled ids are not what tokenising the text gives.
    tail = real.convert_tokens_to_ids(["▁", "m", "u", "s", "e", "u", "m", "s", "."])
    assert real.unk_token_id not in head + tail
    sampled = head + tail + [real.eos_token_id]
    text = real.decode(sampled, skip_special_tokens=True)
    assert text == "Paris is nice. museums."
    retokenised = real(text, add_special_tokens=False)["input_ids"]
    assert len(retokenised) < len(sampled) - 1  # the test only means something if the two differ
    periods = [i for i, t in enumerate(real.convert_ids_to_tokens(sampled)) if t == "."]
    assert len(periods) == 2

    reward = FineGrainedReward(relevance=FixedLabels([["NF-ERR", "NF-ERR"]]), factuality=FixedLabels([["F-ERR", "F-ERR"]]),
                               completeness=FixedScore(0.0), tokenizer=real, nlp=nlp)
    (result,) = reward([EXAMPLE], [sampled])

    nonzero = [i for i, r in enumerate(result.token_rewards) if r != 0.0]
    assert nonzero == periods  # the two "." tokens among the sampled ids
    assert [result.token_rewards[i] for i in periods] == pytest.approx([-0.8, -0.8])
    assert len(result.token_rewards) == len(sampled)


def test_token_char_spans_cover_the_text_with_special_tokens_empty(tokenizer):
    ids = tokenizer.ids(TOKENS)

    text, spans = token_char_spans(tokenizer, ids)

    assert "".join(text[s:e] for s, e in spans) == text
    assert text[slice(*spans[7])] == "," and text[slice(*spans[6])] == "ty"
    assert spans[20][0] == spans[20][1]  # </s> produced no characters


def test_an_empty_generation_gets_only_the_last_token_reward_and_no_segments(tokenizer, nlp):
    relevance, factuality = FixedLabels([[], []]), FixedLabels([[], []])
    reward = FineGrainedReward(relevance=relevance, factuality=factuality, completeness=FixedScore(-1.0),
                               tokenizer=tokenizer, nlp=nlp)

    just_eos, nothing = reward([EXAMPLE, EXAMPLE], [[tokenizer.eos_token_id], []])

    assert just_eos.text == "" and just_eos.pieces == []
    assert just_eos.token_rewards == pytest.approx([-0.3])
    assert just_eos.relevance == (0, 0) and just_eos.factuality == (0, 0)
    assert nothing.token_rewards == []
    assert relevance.inputs[0][-1] == "answer:"  # no separators were sent


def test_a_separator_string_inside_the_text_does_not_add_a_segment(tokenizer, nlp):
    relevance = FixedLabels([["O"]])
    reward = FineGrainedReward(relevance=relevance, factuality=FixedLabels([["O"]]), completeness=FixedScore(0.0),
                               tokenizer=tokenizer, nlp=nlp)
    ids = tokenizer.ids(["▁good", "▁</", "s>", "▁word", ".", EOS])

    (result,) = reward([EXAMPLE], [ids])

    assert result.text == "good </s> word."
    assert relevance.inputs[0].count(SEPARATOR) == 1
    assert result.token_rewards[4] == pytest.approx(0.3 + 0.5)


class SeparatorJudge(torch.nn.Module):
    """Token classifier double: a position is NF-ERR when the token after it is `bad`'s first token."""

    def __init__(self, bad_id: int):
        super().__init__()
        self.bad_id = bad_id
        self.config = type("Config", (), {"id2label": {0: "O", 1: "NF-ERR"}})()

    def forward(self, input_ids, attention_mask=None, **_):
        nxt = torch.roll(input_ids, shifts=-1, dims=1)
        bad = (nxt == self.bad_id).float()
        logits = torch.stack([1 - bad, bad], dim=-1)
        return type("Out", (), {"logits": logits})()


@functools.lru_cache(maxsize=1)
def _judge_tokenizer():
    from training.ml.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer(texts=["good bad word question answer"] * 5)


def _judge(max_length: int):
    tok = _judge_tokenizer()
    bad_id = tok(["bad"], is_split_into_words=True, add_special_tokens=False)["input_ids"][0]
    return TokenRewardModel(SeparatorJudge(bad_id), tok, max_length=max_length)


def test_reward_model_truncation_never_shifts_labels_between_segments(tokenizer, nlp):
    # Sub-sentences: "bad word ... word," / "good word ... word," / "bad word ... word." (6 words each).
    def sub(first: str, end: str) -> list[str]:
        return [f"▁{first}"] + ["▁word"] * 5 + [end]

    tokens = sub("bad", ",") + sub("good", ",") + sub("bad", ".") + [EOS]
    ids = tokenizer.ids(tokens)
    long_question = " ".join(["question"] * 400)
    example = Example(text="q", answers=("a",), question=long_question, passages=())
    ends = [6, 13, 20]
    capture = FixedLabels([["O"] * 3])
    FineGrainedReward(relevance=capture, factuality=FixedLabels([["O"]]), completeness=FixedScore(0.0),
                      tokenizer=tokenizer, nlp=nlp)([example], [ids])
    words = capture.inputs[0]
    judge = _judge(512)
    counts = word_token_counts(judge.tokenizer, [words])[0]
    third = [i for i, w in enumerate(words) if w == SEPARATOR][2]
    answer = words.index("answer:")
    # Room for "question:" and the answer up to (not including) the third separator, nothing more.
    tight = judge.tokenizer.num_special_tokens_to_add(pair=False) + counts[0] + sum(counts[answer:third])

    seen = {}
    for max_length in (512, 60, tight):  # fits; question cut; the answer's tail cut too
        judge = _judge(max_length)
        reward = FineGrainedReward(relevance=judge, factuality=FixedLabels([["O"]]), completeness=FixedScore(0.0),
                                   tokenizer=tokenizer, nlp=nlp)
        (result,) = reward([example], [ids])
        relevance = [result.token_rewards[i] - (0.5 if i == 20 else 0.0) for i in ends]
        seen[max_length] = (relevance, judge.truncated_separators)
        assert sum(1 for r in result.token_rewards if r != 0.0) == 3  # one reward per segment, nowhere else

    assert seen[512] == (pytest.approx([-0.3, 0.3, -0.3]), 0)
    assert seen[60] == (pytest.approx([-0.3, 0.3, -0.3]), 0)
    # The last separator no longer fits: it gets "no error"; the others keep their own labels.
    assert seen[tight] == (pytest.approx([-0.3, 0.3, 0.3]), 1)


def test_holistic_reward_lands_on_the_last_token_only(tokenizer):
    scorer = FixedScore(1.5)
    reward = HolisticReward(preference=scorer, tokenizer=tokenizer)

    full, empty = reward([EXAMPLE, EXAMPLE], [tokenizer.ids(TOKENS), [tokenizer.eos_token_id]])

    assert full.token_rewards == pytest.approx([0.0] * 20 + [1.5])
    assert full.pieces == [{"text": full.text, "reward": 1.5, "label": ""}]
    assert empty.token_rewards == pytest.approx([1.5]) and empty.pieces == []
    assert scorer.inputs[1].endswith("answer:")


def test_kl_penalty_is_minus_beta_times_the_log_ratio_on_valid_tokens():
    scores = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])

    rewards, kl = kl_penalized_rewards(scores, logprobs, ref, mask, beta=0.3)

    assert kl[0].tolist() == pytest.approx([0.5, -1.0, 0.0, 0.0])
    assert rewards[0].tolist() == pytest.approx([-0.15, 0.3, 1.0, 0.0])
    assert not any(math.isnan(v) for v in rewards.flatten().tolist())
