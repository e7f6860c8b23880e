"""Small hand-written examples and campaigns for the annotation page tests.

Not fixtures: plain functions, so unit tests, browser tests and the
benchmark can all build the same data.
"""

from annotation.models import Campaign, CampaignTask, Dataset, Example, Passage, Response

QUESTION = "When was the album Bloom by Troye Sivan released?"
PASSAGES = [
    [
        "Bloom (Troye Sivan album)",
        "Bloom is the second studio album by Australian singer Troye Sivan.",
        "It was released on 31 August 2018 through EMI Australia and Capitol Records.",
        "The album was preceded by five singles, including \"My My My!\" and \"Bloom\".",
        "It debuted at number three on the ARIA Albums Chart.",
    ],
    [
        "Troye Sivan",
        "Troye Sivan Mellet is an Australian singer, songwriter and actor.",
        "He was born in Johannesburg, South Africa, and moved to Perth as a child.",
        "His debut studio album, Blue Neighbourhood, was released in December 2015.",
    ],
]
RESPONSES = {
    1: (
        "Bloom is the second studio album by Troye Sivan. It was released on 31 August 2018. "
        "It was released on 31 August 2018. The album sold ten million copies in its first week. "
        "Sivan was born in Perth, Australia."
    ),
    2: "Bloom, the second album by Troye Sivan, was released on 31 August 2018 through EMI Australia and Capitol Records.",
    3: "Bloom was released in 2018.",
    4: "Troye Sivan released Bloom on 31 August 2018; it debuted at number three on the ARIA Albums Chart.",
}


def make_example(dataset: Dataset, position: int, *, split: str = "dev", question: str = QUESTION) -> Example:
    example = Example.objects.create(
        dataset=dataset, split=split, position=position, question=question, gold=RESPONSES[2], has_feedback_format=True
    )
    for number, passage in enumerate(PASSAGES, start=1):
        Passage.objects.create(example=example, number=number, title=passage[0], sentences=passage[1:])
    for number, text in RESPONSES.items():
        Response.objects.create(example=example, number=number, text=text)
    return example


def make_dataset(name: str = "bloom", *, examples: int = 3, split: str = "dev") -> Dataset:
    dataset = Dataset.objects.create(name=name)
    for position in range(examples):
        make_example(dataset, position, split=split, question=f"{QUESTION} (#{position + 1})")
    return dataset


def make_campaign(
    dataset: Dataset, annotators, *, task: str = CampaignTask.FINE_GRAINED, per_item: int = 1, split: str = "dev", name: str = "Round 1"
) -> Campaign:
    campaign = Campaign.objects.create(name=name, dataset=dataset, split=split, task=task, annotators_per_item=per_item)
    campaign.annotators.set(annotators)
    return campaign


def offsets_of(text: str, phrase: str, occurrence: int = 1) -> tuple[int, int]:
    """(start, end) of the n-th occurrence of `phrase` in `text`."""
    start = -1
    for _ in range(occurrence):
        start = text.index(phrase, start + 1)
    return start, start + len(phrase)
