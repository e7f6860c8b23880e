"""The detoxification task (paper section 3.1's second task): prompts in, continuations with low toxicity out.

    scorers.py   pluggable toxicity scorers: perspective (HTTP), classifier (HF), lexicon (word list)
    rewards.py   holistic `1 - tox(y)` and fine-grained per-sentence toxicity drops
    metrics.py   avg max toxicity, toxicity probability, perplexity, dist-n
    config.py    the detox PPO config
    ppo.py       the trainer: training.ml.ppo's loop with detox rewards and evaluation
Like the rest of training/ml: no Django.
"""
