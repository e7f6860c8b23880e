"""Every name of the qa-feedback world, written once.

The shared data files, the database choices, the annotation pages, the
reward-model files and the trainers all read their names from here, so a
spelling lives in exactly one place.
"""

from __future__ import annotations

# Error types of a fine-grained span, as spelled in the data, with the names annotators see.
IRRELEVANT = "Irrelevant"
REDUNDANT = "Redundant"
INCOHERENT = "Incoherent"
UNVERIFIABLE = "Unverifiable"
WRONG_GROUNDING = "Wrong-Grounding"
ERROR_TYPES = (IRRELEVANT, REDUNDANT, INCOHERENT, UNVERIFIABLE, WRONG_GROUNDING)
ERROR_LABELS = {
    IRRELEVANT: "Irrelevant",
    REDUNDANT: "Repetitive",
    INCOHERENT: "Incoherent",
    UNVERIFIABLE: "Unverifiable",
    WRONG_GROUNDING: "Inconsistent Fact",
}
FACTUAL_ERROR_TYPES = frozenset({WRONG_GROUNDING, UNVERIFIABLE})
NON_FACTUAL_ERROR_TYPES = frozenset(ERROR_TYPES) - FACTUAL_ERROR_TYPES

# Missing-information types.
MISSING_ANSWER = "Missing-Answer"
MISSING_MAJOR = "Missing-Major-Auxiliary"
MISSING_MINOR = "Missing-Minor-Auxiliary"
MISSING_INFO_TYPES = (MISSING_ANSWER, MISSING_MAJOR, MISSING_MINOR)
MISSING_LABELS = {
    MISSING_ANSWER: "Missing Answer",
    MISSING_MAJOR: "Missing Major Auxiliary",
    MISSING_MINOR: "Missing Minor Auxiliary",
}

# The four model answers of a feedback record; fine-grained feedback is on the first.
PREDICTION_KEYS = ("prediction 1", "prediction 2", "prediction 3", "prediction 4")
FIRST_PREDICTION = PREDICTION_KEYS[0]
RESPONSES = (1, 2, 3, 4)

# `preference` holds one value per pair, in this order (1-based answer numbers).
PREFERENCE_PAIRS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
# The same pairs as 0-based indexes into PREDICTION_KEYS.
PREFERENCE_INDEX_PAIRS = tuple((a - 1, b - 1) for a, b in PREFERENCE_PAIRS)
NO_PREFERENCE = 0
FIRST_PREFERRED = 1
SECOND_PREFERRED = 2
PREFERENCE_VALUES = (NO_PREFERENCE, FIRST_PREFERRED, SECOND_PREFERRED)

# Reward-model file tags.
SEPARATOR = "</s>"
IGNORE = "Ignore"
NO_ERROR = "O"
NF_ERR = "NF-ERR"
F_ERR = "F-ERR"
RELEVANCE_LABELS = (NO_ERROR, NF_ERR)
FACTUALITY_LABELS = (NO_ERROR, F_ERR)

# Reward-model file names.
NF_ERR_SUBSENTENCE = "NF-ERR_subsentence"
F_ERR_SENTENCE = "F-ERR_sentence"
COMP_SEQUENCE = "COMP_sequence"
RM_FILE_NAMES = (NF_ERR_SUBSENTENCE, F_ERR_SENTENCE, COMP_SEQUENCE)

# Segment levels the reward models judge.
SENTENCE = "sentence"
SUBSENTENCE = "subsentence"
