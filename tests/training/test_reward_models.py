"""Reward-model trainers and the loading API PPO uses (training/ml/train_rm.py, reward_models.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.kinds import KINDS, build_config
from training.ml.configs import ConfigError, from_dict
from training.ml.reward_models import (
    SEPARATOR,
    PreferenceRewardModel,
    TokenRewardModel,
    answer_words_from_segments,
    ensure_separator_token,
    fit_words,
    load_tokenizer,
    preference_rm_text,
    separator_answer_start,
    token_rm_words,
    words_to_keep,
)
from training.ml.train_rm import (
    PreferenceRMConfig,
    TokenExample,
    TokenRMConfig,
    align_labels,
    classification_metrics,
    encode_token_examples,
    pairwise_loss,
    preference_pairs,
    read_preference_file,
    read_token_rm_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
RM_KINDS = ("rm_relevance", "rm_factuality", "rm_completeness", "rm_preference")


def _reference(qa_feedback_dir: Path, name: str) -> Path:
    return qa_feedback_dir / "reference" / name / "dev.json"


def _json_lines(path: Path, start: int, stop: int) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return handle.readlines()[start:stop]


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _entry(kind: str, config: dict, output_dir: Path) -> subprocess.CompletedProcess:
    output_dir.mkdir(parents=True, exist_ok=True)
    config_path = output_dir.parent / f"{output_dir.name}-config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "training.ml.entry", *KINDS[kind].entry_args(), "--config", str(config_path), "--output-dir", str(output_dir),
         "--events", str(output_dir / "events.jsonl"), "--no-wandb"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, qa_feedback_dir) -> Path:
    from training.ml.tiny import build_tiny_encoder

    rows = [json.loads(line) for line in _json_lines(_reference(qa_feedback_dir, "NF-ERR_subsentence"), 0, 60)]
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"), texts=[" ".join(r["text"]) for r in rows])


# ---------------------------------------------------------------- label alignment


def test_it_labels_only_the_first_subtoken_of_each_labelled_word():
    # word 1 (a separator tagged O) spans positions 3-4, word 3 (tagged NF-ERR) spans 6-7.
    word_ids = [None, 0, 0, 1, 1, 2, 3, 3, None]
    tags = ["Ignore", "O", "Ignore", "NF-ERR"]
    assert align_labels(word_ids, tags, {"O": 0, "NF-ERR": 1}) == [-100, -100, -100, 0, -100, -100, 1, -100, -100]


def test_it_puts_labels_on_the_first_subtoken_of_separators_with_a_bert_tokenizer():
    from training.ml.tiny import minilm_path

    tokenizer = load_tokenizer(minilm_path())
    words = ["question:", "Who?", "answer:", SEPARATOR, "It", "is", SEPARATOR, "Bob."]
    tags = ["Ignore", "Ignore", "Ignore", "NF-ERR", "Ignore", "Ignore", "O", "Ignore"]
    (item,) = encode_token_examples(tokenizer, [TokenExample("0", words, tags)], label2id={"O": 0, "NF-ERR": 1}, max_length=64)
    tokens = tokenizer.convert_ids_to_tokens(item["input_ids"])
    # Without the added token `</s>` is four word pieces; only the first one carries the label.
    assert tokens.count("<") == 2 and tokens.count("/") == 2
    labelled = [(tokens[i], label) for i, label in enumerate(item["labels"]) if label != -100]
    assert labelled == [("<", 1), ("<", 0)]


def test_it_maps_every_reference_tag_to_its_separator_and_ignore_to_minus_100(tiny_encoder, qa_feedback_dir):
    tokenizer = load_tokenizer(tiny_encoder)
    ensure_separator_token(tokenizer)
    label2id = {"O": 0, "NF-ERR": 1}
    examples = read_token_rm_file(_reference(qa_feedback_dir, "NF-ERR_subsentence"), labels=["O", "NF-ERR"])[:20]
    items = encode_token_examples(tokenizer, examples, label2id=label2id, max_length=1024)
    assert len(items) == len(examples)
    for example, item in zip(examples, items):
        tokens = tokenizer.convert_ids_to_tokens(item["input_ids"])
        labelled = [i for i, label in enumerate(item["labels"]) if label != -100]
        assert all(tokens[i] == SEPARATOR for i in labelled)
        expected = [label2id[t] for t in example.tags if t != "Ignore"]
        assert [item["labels"][i] for i in labelled] == expected
        assert len(labelled) == example.words.count(SEPARATOR)


def test_it_refuses_a_training_file_with_an_unknown_tag_naming_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    good = {"id": "0", "text": ["answer:", SEPARATOR, "x"], "feedback_tags": ["Ignore", "O", "Ignore"]}
    bad = {"id": "1", "text": ["answer:", SEPARATOR, "x"], "feedback_tags": ["Ignore", "F-ERR", "Ignore"]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: unknown tag\(s\) 'F-ERR'"):
        read_token_rm_file(path, labels=["O", "NF-ERR"])


# ---------------------------------------------------------------- metrics and preference pairs


def test_it_computes_per_class_metrics_from_a_confusion_matrix():
    # Confusion matrix (rows true, columns predicted): O->O 5, O->ERR 1, ERR->O 2, ERR->ERR 2.
    y_true = [0] * 6 + [1] * 4
    y_pred = [0] * 5 + [1] + [0] * 2 + [1] * 2
    metrics = classification_metrics(y_true, y_pred, ["O", "NF-ERR"])
    assert metrics["precision_O"] == pytest.approx(5 / 7)
    assert metrics["recall_O"] == pytest.approx(5 / 6)
    assert metrics["f1_O"] == pytest.approx(10 / 13)
    assert metrics["precision_NF-ERR"] == pytest.approx(2 / 3)
    assert metrics["recall_NF-ERR"] == pytest.approx(1 / 2)
    assert metrics["f1_NF-ERR"] == pytest.approx(4 / 7)
    assert metrics["macro_f1"] == pytest.approx((10 / 13 + 4 / 7) / 2)
    assert metrics["accuracy"] == pytest.approx(7 / 10)


def test_it_scores_a_never_predicted_class_as_zero_instead_of_failing():
    metrics = classification_metrics([0, 1, 1], [0, 0, 0], ["O", "F-ERR"])
    assert (metrics["precision_F-ERR"], metrics["recall_F-ERR"], metrics["f1_F-ERR"]) == (0.0, 0.0, 0.0)
    assert metrics["precision_O"] == pytest.approx(1 / 3)
    assert metrics["accuracy"] == pytest.approx(1 / 3)


def test_it_orients_preference_pairs_and_skips_ties():
    # p12 p13 p14 p23 p24 p34
    assert preference_pairs([1, 2, 0, 0, 1, 2]) == [(0, 1), (2, 0), (1, 3), (3, 2)]
    assert preference_pairs([0] * 6) == []
    with pytest.raises(ValueError, match="0, 1 or 2"):
        preference_pairs([1, 3, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="6 entries"):
        preference_pairs([1, 2])


def test_it_computes_the_pairwise_loss_as_minus_log_sigmoid_of_the_margin():
    import torch

    scores = torch.tensor([2.0, 0.5, -1.0])
    loss = pairwise_loss(scores, torch.tensor([0, 2]), torch.tensor([1, 1]))
    expected = (math.log1p(math.exp(-1.5)) + math.log1p(math.exp(1.5))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_it_reads_feedback_records_into_four_texts_and_their_pairs(qa_feedback_dir):
    raw = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:10]
    records = read_preference_file(qa_feedback_dir / "dev_feedback.json")[:10]
    for row, record in zip(raw, records):
        assert len(record.texts) == 4
        assert record.texts[1].startswith("question: " + " ".join(row["question"].split()))
        assert record.texts[1].endswith("answer: " + " ".join(row["prediction 2"].split()))
        assert len(record.pairs) == sum(1 for p in row["preference"] if p != 0)


# ---------------------------------------------------------------- input builders and long inputs


def test_it_builds_r1_and_r2_inputs_exactly_like_the_reference_files(qa_feedback_dir):
    feedback = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))
    for name, with_context in (("NF-ERR_subsentence", False), ("F-ERR_sentence", True)):
        for line in _json_lines(_reference(qa_feedback_dir, name), 0, 25):
            row = json.loads(line)
            record = feedback[int(row["id"])]
            answer_words = row["text"][separator_answer_start(row["text"]) + 1 :]
            rebuilt = token_rm_words(question=record["question"], answer_words=answer_words,
                                     passages=record["passages"] if with_context else None)
            assert rebuilt == row["text"], f"{name} id {row['id']}"


def test_it_accepts_policy_input_passages_like_feedback_passages():
    as_feedback = [["Title A", "First sentence.", "Second one."]]
    as_policy_input = [{"wikipage": "Title A", "content": "First sentence. Second one."}]
    answer = answer_words_from_segments([["It", "is."], ["Yes."]])
    assert token_rm_words(question="Q?", answer_words=answer, passages=as_feedback) == \
        token_rm_words(question="Q?", answer_words=answer, passages=as_policy_input)
    assert preference_rm_text(question=" Q? ", passages=as_feedback, answer="It  is.") == \
        "question: Q? context: wikipage: Title A text: First sentence. Second one. answer: It is."


def test_it_drops_the_end_of_the_context_then_the_question_before_touching_the_answer():
    words = ["question:", "q1", "q2", "context:", "c1", "c2", "c3", "answer:", SEPARATOR, "a1", SEPARATOR, "a2"]
    ones = [1] * len(words)
    kept = lambda budget: [words[i] for i in words_to_keep(words, ones, budget, answer_start=7)]  # noqa: E731
    assert kept(12) == words
    assert kept(10) == ["question:", "q1", "q2", "context:", "c1", "answer:", SEPARATOR, "a1", SEPARATOR, "a2"]
    assert kept(7) == ["question:", "context:", "answer:", SEPARATOR, "a1", SEPARATOR, "a2"]
    assert kept(5) == ["question:", "context:", "answer:", SEPARATOR, "a1"]


def test_it_fits_long_r2_inputs_into_the_window_with_the_whole_answer(tiny_encoder, qa_feedback_dir):
    tokenizer = load_tokenizer(tiny_encoder)
    ensure_separator_token(tokenizer)
    rows = [json.loads(line) for line in _json_lines(_reference(qa_feedback_dir, "F-ERR_sentence"), 0, 10)]
    word_lists = [r["text"] for r in rows]
    # Every one of these inputs is over 800 tokens with this tokenizer; every answer is under 300.
    for words, keep in zip(word_lists, fit_words(tokenizer, word_lists, max_length=400, answer_start_of=separator_answer_start)):
        kept = [words[i] for i in keep]
        start = separator_answer_start(words)
        assert len(kept) < len(words)
        assert kept[: kept.index("context:") + 1] == words[: words.index("context:") + 1]
        assert kept[-(len(words) - start):] == words[start:]
        assert len(tokenizer(kept, is_split_into_words=True)["input_ids"]) <= 400


# ---------------------------------------------------------------- configs and presets


def test_every_rm_kind_has_paper_and_tiny_presets_that_build():
    for kind in RM_KINDS:
        paper = build_config(kind, preset="paper")
        tiny = build_config(kind, preset="tiny")
        assert paper.base_model == "allenai/longformer-base-4096"
        assert tiny.base_model == "{tiny_encoder}"
        assert isinstance(paper, PreferenceRMConfig if kind in ("rm_completeness", "rm_preference") else TokenRMConfig)
    assert build_config("rm_relevance", preset="paper").learning_rate == 5e-6
    assert build_config("rm_completeness", preset="paper").learning_rate == 5e-5
    assert build_config("rm_preference", preset="paper").learning_rate == 1e-5


def test_it_refuses_bad_settings_naming_the_field():
    with pytest.raises(ConfigError) as caught:
        from_dict(TokenRMConfig, {"epochs": 0, "labels": ["O", "Ignore"], "warmup_ratio": 1.5})
    fields = {name for name, _ in caught.value.problems}
    assert fields == {"epochs", "labels", "warmup_ratio"}
    with pytest.raises(ConfigError, match="learning_rate: expected float"):
        from_dict(PreferenceRMConfig, {"learning_rate": "fast"})


def test_it_refuses_to_resume_from_a_folder_that_is_not_a_checkpoint(tmp_path):
    from training.ml.progress import NullReporter
    from training.ml.train_rm import run_preference_rm

    config = from_dict(PreferenceRMConfig, {"train_file": str(tmp_path / "train.json")})
    with pytest.raises(ValueError, match="not a checkpoint folder: trainer_state.json is missing"):
        run_preference_rm(config, kind="rm_preference", output_dir=tmp_path / "out", reporter=NullReporter(),
                          resume_from=tmp_path)


def test_the_ml_modules_never_import_django():
    code = "import sys, training.ml.train_rm, training.ml.reward_models; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}).returncode == 0


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained_r1(tmp_path_factory, tiny_encoder, qa_feedback_dir) -> Path:
    folder = tmp_path_factory.mktemp("r1")
    reference = _reference(qa_feedback_dir, "NF-ERR_subsentence")
    (folder / "train.jsonl").write_text("".join(_json_lines(reference, 0, 40)), encoding="utf-8")
    (folder / "dev.jsonl").write_text("".join(_json_lines(reference, 40, 56)), encoding="utf-8")
    config = {"train_file": str(folder / "train.jsonl"), "eval_file": str(folder / "dev.jsonl"),
              "base_model": str(tiny_encoder), "epochs": 2, "batch_size": 8, "learning_rate": 1e-3,
              "log_every_steps": 2, "max_length": 512}
    result = _entry("rm_relevance", config, folder / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out"


@pytest.mark.slow
def test_it_trains_r1_through_the_entry_point_and_reports_progress(trained_r1):
    events = _events(trained_r1 / "events.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    total = events[0]["total_steps"]
    assert total == 10  # 40 examples, batches of 8, 2 epochs
    assert [e["step"] for e in events if e["event"] == "progress"] == list(range(1, total + 1))
    metrics = {k for e in events if e["event"] == "metrics" for k in e["metrics"]}
    assert {"train/loss", "train/lr", "eval/f1_O", "eval/f1_NF-ERR", "eval/precision_O", "eval/recall_NF-ERR",
            "eval/macro_f1", "eval/accuracy"} <= metrics
    eval_steps = [e["step"] for e in events if e["event"] == "metrics" and "eval/macro_f1" in e["metrics"]]
    assert eval_steps == [5, 10]  # once per epoch
    artifacts = {(e["kind"], e["name"], e["path"]) for e in events if e["event"] == "artifact"}
    assert ("model", "model", "model") in artifacts and ("checkpoint", "last", "checkpoints/last") in artifacts
    summary = events[-1]["summary"]
    best = max(e["metrics"]["eval/macro_f1"] for e in events if e["event"] == "metrics" and "eval/macro_f1" in e["metrics"])
    assert summary["best_macro_f1"] == pytest.approx(best)


@pytest.mark.slow
def test_the_saved_r1_model_gives_one_label_per_separator_for_a_new_answer(trained_r1):
    model = TokenRewardModel.load(trained_r1 / "model")
    # Stored by the kind, not by sorted tag order (which would put NF-ERR first).
    assert model.model.config.id2label == {0: "O", 1: "NF-ERR"}
    assert model.labels == ["O", "NF-ERR"]
    answer = answer_words_from_segments([["The", "Mona", "Lisa", "was", "painted", "by", "Leonardo,"],
                                         ["an", "Italian", "artist."], ["It", "hangs", "in", "the", "Louvre."]])
    words = token_rm_words(question="Who painted the Mona Lisa?", answer_words=answer)
    labels, no_segments = model.predict([words, token_rm_words(question="Who?", answer_words=[])])
    assert len(labels) == 3 and set(labels) <= {"O", "NF-ERR"}
    assert no_segments == []
    assert model.truncated_separators == 0


@pytest.mark.slow
def test_separators_beyond_the_window_still_get_a_label(trained_r1):
    model = TokenRewardModel.load(trained_r1 / "model")
    passages = [["Long page", " ".join(["filler"] * 400)]]
    answer = answer_words_from_segments([["Short", "answer,"], ["with", "a", "second", "part."]])
    words = token_rm_words(question="What?", answer_words=answer, passages=passages)
    # Only context is dropped: both separators are judged by the model.
    model.max_length = 40
    assert len(model.predict([words])[0]) == 2 and model.truncated_separators == 0
    # Not even the answer fits: the separators that fall out are labelled O and counted.
    model.max_length = 8
    assert len(model.predict([words])[0]) == 2 and model.truncated_separators >= 1


@pytest.mark.slow
def test_it_resumes_from_the_checkpoint_at_the_saved_step(tmp_path, tiny_encoder, qa_feedback_dir):
    import torch

    from training.ml.progress import Reporter
    from training.ml.train_rm import run_token_rm

    reference = _reference(qa_feedback_dir, "NF-ERR_subsentence")
    (tmp_path / "train.jsonl").write_text("".join(_json_lines(reference, 0, 24)), encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text("".join(_json_lines(reference, 24, 32)), encoding="utf-8")
    settings = {"train_file": str(tmp_path / "train.jsonl"), "eval_file": str(tmp_path / "dev.jsonl"),
                "base_model": str(tiny_encoder), "epochs": 3, "batch_size": 4, "learning_rate": 1e-3, "max_length": 512}

    first = tmp_path / "first"
    reporter = Reporter(first / "events.jsonl")
    run_token_rm(from_dict(TokenRMConfig, {**settings, "max_steps": 4}), kind="rm_relevance", output_dir=first,
                 reporter=reporter, resume_from=None)
    reporter.close()
    checkpoint = first / "checkpoints" / "last"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 4

    second = tmp_path / "second"
    reporter = Reporter(second / "events.jsonl")
    summary = run_token_rm(from_dict(TokenRMConfig, {**settings, "max_steps": 9}), kind="rm_relevance", output_dir=second,
                           reporter=reporter, resume_from=checkpoint)
    reporter.close()
    events = _events(second / "events.jsonl")
    assert events[0]["event"] == "start" and events[0]["resumed_from_step"] == 4
    assert [e["step"] for e in events if e["event"] == "progress"] == [5, 6, 7, 8, 9]
    assert summary["steps"] == 9
    # The optimizer state came along: Adam has counted all nine updates.
    optimizer = torch.load(second / "checkpoints" / "last" / "optimizer.pt", weights_only=True)
    assert {int(s["step"]) for s in optimizer["state"].values()} == {9}
    assert TokenRewardModel.load(second / "model").labels == ["O", "NF-ERR"]


@pytest.mark.slow
def test_it_trains_the_preference_rm_and_saves_the_training_score_stats(tmp_path, tiny_encoder, qa_feedback_dir):
    feedback = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))
    (tmp_path / "train.json").write_text(json.dumps(feedback[:24]), encoding="utf-8")
    (tmp_path / "dev.json").write_text(json.dumps(feedback[24:32]), encoding="utf-8")
    config = {"train_file": str(tmp_path / "train.json"), "eval_file": str(tmp_path / "dev.json"),
              "base_model": str(tiny_encoder), "max_steps": 8, "eval_every_steps": 4, "batch_size": 4,
              "learning_rate": 1e-3, "max_length": 128, "log_every_steps": 2}
    result = _entry("rm_preference", config, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]

    events = _events(tmp_path / "out" / "events.jsonl")
    assert [e["step"] for e in events if e["event"] == "metrics" and "eval/pairwise_accuracy" in e["metrics"]] == [4, 8]
    assert events[-1]["event"] == "done"
    model_dir = tmp_path / "out" / "model"
    stats = json.loads((model_dir / "reward_stats.json").read_text())
    config_json = json.loads((model_dir / "config.json").read_text())
    assert (config_json["reward_mean"], config_json["reward_std"]) == (stats["mean"], stats["std"])
    assert stats["count"] == 4 * 24

    model = PreferenceRewardModel.load(model_dir)
    assert (model.mean, model.std) == (stats["mean"], stats["std"])
    train_texts = [t for r in read_preference_file(tmp_path / "train.json") for t in r.texts]
    scores = model.score(train_texts)
    assert sum(scores) / len(scores) == pytest.approx(stats["mean"], abs=1e-5)
    new = [preference_rm_text(question="Who painted the Mona Lisa?", passages=[["Mona Lisa", "A portrait."]],
                              answer="Leonardo da Vinci painted it.")]
    (score,) = model.score(new)
    assert model.normalized(new) == [pytest.approx((score - stats["mean"]) / stats["std"])]
