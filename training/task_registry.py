"""The tasks: what Granary trains policies to do, each declared once.

A task says what its data looks like and how it gets in, how a prompt is built,
which policy family it trains (seq2seq or causal), its reward functions
(holistic and fine-grained), its evaluation figures, and so (through the run
kinds that name it in training/kinds.py) its presets and run kinds; pipelines
name their task too. The launch form groups kinds by task and the run page
leads with the task's figures. A third task is a package under training/ml/,
its kinds in kinds.py and one `Task` here.

Pure: no Django (like kinds.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from training import kinds as run_kinds
from training.ml.configs import ConfigError


@dataclass(frozen=True)
class Task:
    name: str
    """The value stored in `Dataset.task`."""
    label: str
    description: str
    data_format: str
    """What a dataset of the task holds, in one line."""
    import_command: str
    """The management command that brings the task's data in."""
    prompt: str
    """How a policy prompt is built from an example."""
    policy_family: Literal["seq2seq", "causal"]
    default_policy: str
    """The paper's starting policy (hub name)."""
    rewards: Mapping[str, str]
    """Reward setting (holistic, fine_grained) -> how it is computed, in one line."""
    reward_functions: Mapping[str, str]
    """Reward setting -> `module:name` of the reward function class in training/ml."""
    eval_metrics: Mapping[str, str]
    """Headline evaluation figures, metric key -> label, in the order the run page shows them."""
    lower_is_better: tuple[str, ...] = ()
    """Which of the headline figures improve as they fall."""
    baseline_label: str = "SFT policy"
    """What the policy that PPO starts from is called where policies are compared."""

    def kinds(self) -> list[run_kinds.Kind]:
        """The run kinds that train on this task's data, in the kinds registry's order."""
        return [kind for kind in run_kinds.KINDS.values() if kind.task == self.name]

    def presets(self) -> dict[str, list[str]]:
        """Each of the task's kinds with its preset names."""
        return {kind.name: kind.preset_names() for kind in self.kinds()}


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="qa_feedback",
            label="Long-form QA (qa-feedback)",
            description="Answers to ASQA questions from Wikipedia passages; feedback from annotators trains R1-R3 "
                        "and a preference model.",
            data_format="qa-feedback JSON: dev.json policy inputs and dev_feedback.json feedback records",
            import_command="import_qa_feedback",
            prompt="question: ... context: wikipage: ... text: ... (the dataset's `text` field)",
            policy_family="seq2seq",
            default_policy="t5-large",
            rewards={
                "holistic": "the preference reward model's normalised score on the last token",
                "fine_grained": "R1 at sub-sentence ends, R2 at sentence ends, R3 on the last token",
            },
            reward_functions={"holistic": "training.ml.rewards:HolisticReward",
                              "fine_grained": "training.ml.rewards:FineGrainedReward"},
            eval_metrics={"eval/rouge_lsum": "ROUGE-Lsum", "eval/relevance_ratio": "Relevance ratio",
                          "eval/factuality_ratio": "Factuality ratio", "eval/completeness_reward": "Completeness reward",
                          "eval/length": "Length (tokens)"},
        ),
        Task(
            name="detox",
            label="Detoxification (RealToxicityPrompts)",
            description="Continuations of prompts by a causal LM used without SFT, rewarded by a toxicity scorer "
                        "(perspective, classifier or lexicon).",
            data_format="prompts: RealToxicityPrompts JSON lines or {\"prompt\": ...} lines",
            import_command="import_prompts",
            prompt="the prompt text as is; the policy continues it",
            policy_family="causal",
            default_policy="gpt2-large",
            rewards={
                "holistic": "1 - toxicity(y) on the last token",
                "fine_grained": "-(tox(y_1..j) - tox(y_1..j-1)) on the last token of each sentence j",
            },
            reward_functions={"holistic": "training.ml.detox.rewards:DetoxReward",
                              "fine_grained": "training.ml.detox.rewards:DetoxReward"},
            eval_metrics={"eval/avg_max_toxicity": "Avg. max toxicity", "eval/toxicity_prob": "Toxicity prob.",
                          "eval/perplexity": "Perplexity", "eval/dist_1": "dist-1", "eval/dist_2": "dist-2",
                          "eval/dist_3": "dist-3"},
            lower_is_better=("eval/avg_max_toxicity", "eval/toxicity_prob", "eval/perplexity"),
            baseline_label="Initial policy (no SFT)",
        ),
    )
}
DEFAULT_TASK = "qa_feedback"


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError([("task", f"unknown task {name!r}; expected one of {', '.join(TASKS)}")]) from None


def eval_columns(name: str) -> tuple[tuple[str, str], ...]:
    """(metric key, label) of a task's headline figures: the columns policies are compared on."""
    return tuple(get(name).eval_metrics.items())


def of_kind(kind: str) -> Task | None:
    """The task a run kind trains on (None for a kind no longer registered)."""
    spec = run_kinds.KINDS.get(kind)
    return TASKS.get(spec.task) if spec else None


def kind_groups() -> list[tuple[Task, list[tuple[str, str]]]]:
    """Each task with its kinds' (name, label): the launch form's option groups."""
    return [(task, [(k.name, k.label) for k in task.kinds()]) for task in TASKS.values() if task.kinds()]


def headline(kind: str, latest: Mapping[str, float]) -> list[dict]:
    """The task's headline figures among a run's latest metrics: key, label, value, and which way is better."""
    task = of_kind(kind)
    if task is None:
        return []
    return [{"key": key, "label": label, "value": latest[key], "lower_is_better": key in task.lower_is_better}
            for key, label in task.eval_metrics.items() if key in latest]
