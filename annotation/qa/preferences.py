"""Pairwise preferences among the four responses of an example. No ORM.

The qa-feedback `preference` list answers the six pairs in a fixed order,
(1,2) (1,3) (1,4) (2,3) (2,4) (3,4), with 1 = the first response is better,
2 = the second is better, 0 = no preference. The comparison page asks the
same six questions in the same order, so an answer list maps one-to-one.
"""

import functools
from collections.abc import Sequence
from itertools import combinations, product

from annotation.qa.vocab import FIRST_PREFERRED, NO_PREFERENCE, PREFERENCE_PAIRS, RESPONSES, SECOND_PREFERRED

# The comparison form's answer names, and the keys that choose them.
ANSWER_VALUES = {"first": FIRST_PREFERRED, "second": SECOND_PREFERRED, "equal": NO_PREFERENCE}
VALUE_ANSWERS = {value: name for name, value in ANSWER_VALUES.items()}


def pair_index(a: int, b: int) -> int:
    return PREFERENCE_PAIRS.index((a, b))


def empty_answers() -> list[int | None]:
    return [None] * len(PREFERENCE_PAIRS)


def unanswered(preference: Sequence[object]) -> list[str]:
    """The pairs still without an answer, as "1 vs 2"."""
    return [f"{a} vs {b}" for (a, b), value in zip(PREFERENCE_PAIRS, preference) if value is None]


def _relation(preference: Sequence[int | None], a: int, b: int) -> int | None:
    """-1 when a is better, 1 when b is better, 0 when equal, None when unanswered (any a != b)."""
    if a < b:
        value = preference[pair_index(a, b)]
        flip = 1
    else:
        value = preference[pair_index(b, a)]
        flip = -1
    if value is None:
        return None
    return {FIRST_PREFERRED: -1, SECOND_PREFERRED: 1, NO_PREFERENCE: 0}[value] * flip


def _consistent(preference: Sequence[int | None], items: Sequence[int]) -> bool:
    """Whether some ranking with ties (lower rank = better) agrees with every answered pair among `items`."""
    for ranks in product(range(len(items)), repeat=len(items)):
        rank = dict(zip(items, ranks))
        if all(
            (relation := _relation(preference, a, b)) is None or relation == _sign(rank[a] - rank[b])
            for a, b in combinations(items, 2)
        ):
            return True
    return False


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _describe(preference: Sequence[int | None], a: int, b: int) -> str | None:
    relation = _relation(preference, a, b)
    if relation is None:
        return None
    return {-1: f"{a} > {b}", 1: f"{b} > {a}", 0: f"{a} = {b}"}[relation]


def intransitive_cycles(preference: Sequence[int | None]) -> list[str]:
    """Human-readable descriptions of answers that no best-to-worst order can satisfy.

    Each inconsistent triple of responses is named with its three answers
    (e.g. "1 > 2, 2 > 3, 3 > 1"); if only the four together are inconsistent,
    all their answered pairs are named. Unanswered pairs never conflict.

    The comparison page asks on every open and every answer; the search tries
    up to 256 rankings (0.1-0.3 ms), and there are only 4^6 answer lists, so
    each one's result is kept once worked out.
    """
    return list(_cycles(tuple(preference)))


@functools.lru_cache(maxsize=4 ** len(PREFERENCE_PAIRS))
def _cycles(preference: tuple[int | None, ...]) -> tuple[str, ...]:
    cycles = []
    for triple in combinations(RESPONSES, 3):
        if not _consistent(preference, triple):
            cycles.append(", ".join(_describe(preference, a, b) for a, b in _cycle_order(triple)))
    if not cycles and not _consistent(preference, RESPONSES):
        cycles.append(", ".join(text for a, b in PREFERENCE_PAIRS if (text := _describe(preference, a, b))))
    return tuple(cycles)


def _cycle_order(triple: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    a, b, c = triple
    return ((a, b), (b, c), (a, c))
