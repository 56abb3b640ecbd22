"""PHQ-9 and GAD-7 scored by the published rules: the sum of the items, the published bands, and
strict refusal of anything that is not one integer 0-3 per item."""

from __future__ import annotations

import pytest

from integration.measures import GAD7, PHQ9, AnswerError, score


def _answers(total: int, items: int) -> list[int]:
    """Answers summing to ``total``: threes first, then the remainder, then zeros."""
    answers = []
    for _ in range(items):
        answers.append(min(3, total))
        total -= answers[-1]
    assert total == 0
    return answers


PHQ9_BOUNDARIES = [
    (0, "minimal"),
    (4, "minimal"),
    (5, "mild"),
    (9, "mild"),
    (10, "moderate"),
    (14, "moderate"),
    (15, "moderately_severe"),
    (19, "moderately_severe"),
    (20, "severe"),
    (27, "severe"),
]
GAD7_BOUNDARIES = [
    (0, "minimal"),
    (4, "minimal"),
    (5, "mild"),
    (9, "mild"),
    (10, "moderate"),
    (14, "moderate"),
    (15, "severe"),
    (21, "severe"),
]


@pytest.mark.parametrize(("total", "severity"), PHQ9_BOUNDARIES)
def test_phq9_band_boundaries(total: int, severity: str) -> None:
    result = score("phq9", _answers(total, 9))
    assert (result.total, result.severity) == (total, severity)


@pytest.mark.parametrize(("total", "severity"), GAD7_BOUNDARIES)
def test_gad7_band_boundaries(total: int, severity: str) -> None:
    result = score("gad7", _answers(total, 7))
    assert (result.total, result.severity) == (total, severity)


def test_every_possible_total_has_exactly_one_band() -> None:
    for questionnaire in (PHQ9, GAD7):
        for total in range(questionnaire.max_score + 1):
            matching = [b for b in questionnaire.bands if b.low <= total <= b.high]
            assert len(matching) == 1
    assert (PHQ9.max_score, GAD7.max_score) == (27, 21)


def test_worked_examples_by_the_published_rule() -> None:
    # The total is the plain sum of the item scores (Kroenke 2001; Spitzer 2006).
    phq = score("phq9", [3, 2, 2, 1, 1, 2, 1, 0, 0])
    gad = score("gad7", [2, 3, 2, 2, 1, 1, 1])

    assert (phq.total, phq.severity, phq.has_self_harm_thoughts) == (12, "moderate", False)
    assert (gad.total, gad.severity, gad.has_self_harm_thoughts) == (12, "moderate", False)


def test_item_nine_is_the_self_harm_item() -> None:
    assert PHQ9.items[8] == (
        "Thoughts that you would be better off dead or of hurting yourself in some way"
    )
    assert score("phq9", [0] * 8 + [1]).has_self_harm_thoughts is True
    assert score("phq9", [3] * 8 + [0]).has_self_harm_thoughts is False
    # The GAD-7 has no such item, whatever its last answer.
    assert score("gad7", [3] * 7).has_self_harm_thoughts is False


def test_the_published_items_and_scale() -> None:
    document = PHQ9.as_dict()
    assert [len(PHQ9.items), len(GAD7.items)] == [9, 7]
    assert document["options"] == [
        {"value": 0, "label": "Not at all"},
        {"value": 1, "label": "Several days"},
        {"value": 2, "label": "More than half the days"},
        {"value": 3, "label": "Nearly every day"},
    ]
    assert document["items"][0] == {
        "number": 1,
        "text": "Little interest or pleasure in doing things",
    }
    assert GAD7.items[0] == "Feeling nervous, anxious, or on edge"
    assert PHQ9.citation.startswith("Kroenke K, Spitzer RL, Williams JBW. The PHQ-9")
    assert "J Gen Intern Med. 2001;16(9):606-613" in PHQ9.citation
    assert GAD7.citation.startswith("Spitzer RL, Kroenke K, Williams JBW, Lowe B.")
    assert "Arch Intern Med. 2006;166(10):1092-1097" in GAD7.citation


@pytest.mark.parametrize(
    ("instrument", "answers", "errors"),
    [
        ("phq9", [0] * 8, {"answers": ["PHQ-9 has 9 items; got 8 answers."]}),
        ("phq9", [0] * 10, {"answers": ["PHQ-9 has 9 items; got 10 answers."]}),
        ("gad7", [0] * 9, {"answers": ["GAD-7 has 7 items; got 9 answers."]}),
        ("gad7", [], {"answers": ["GAD-7 has 7 items; got 0 answers."]}),
        ("phq9", [0] * 8 + [4], {"answers[8]": ["Item 9: an integer 0 to 3, got 4."]}),
        ("phq9", [-1] + [0] * 8, {"answers[0]": ["Item 1: an integer 0 to 3, got -1."]}),
        ("gad7", [True] + [0] * 6, {"answers[0]": ["Item 1: an integer 0 to 3, got True."]}),
        ("gad7", [0, 1.0, 0, 0, 0, 0, 0], {"answers[1]": ["Item 2: an integer 0 to 3, got 1.0."]}),
        ("gad7", [0, 0, "2", 0, 0, 0, 0], {"answers[2]": ["Item 3: an integer 0 to 3, got '2'."]}),
        (
            "gad7",
            [None] * 7,
            {f"answers[{i}]": [f"Item {i + 1}: an integer 0 to 3, got None."] for i in range(7)},
        ),
        ("gad7", "0000000", {"answers": ["A list of integers 0 to 3."]}),
        ("gad7", {"a": 1}, {"answers": ["A list of integers 0 to 3."]}),
        ("bdi", [0] * 21, {"instrument": ["One of phq9, gad7."]}),
    ],
)
def test_answers_that_cannot_be_scored_are_refused(
    instrument: str, answers: object, errors: dict
) -> None:
    with pytest.raises(AnswerError) as caught:
        score(instrument, answers)  # type: ignore[arg-type]
    assert caught.value.errors == errors
