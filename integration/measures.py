"""Outcome measures as data: the PHQ-9 and the GAD-7, their published items and scoring. Pure.

Both are in the public domain (developed by Drs. Spitzer, Williams, Kroenke and colleagues with an
educational grant from Pfizer; no permission is needed to reproduce, translate or distribute them).
Each item is answered for "the last 2 weeks" on the same four-point scale; the total is the sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: The answer scale shared by every item of both questionnaires.
RESPONSE_OPTIONS: tuple[tuple[int, str], ...] = (
    (0, "Not at all"),
    (1, "Several days"),
    (2, "More than half the days"),
    (3, "Nearly every day"),
)


@dataclass(frozen=True, slots=True)
class Band:
    severity: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Questionnaire:
    code: str
    name: str
    stem: str
    items: tuple[str, ...]
    bands: tuple[Band, ...]
    citation: str

    @property
    def max_score(self) -> int:
        return 3 * len(self.items)

    def severity(self, total: int) -> str:
        for band in self.bands:
            if band.low <= total <= band.high:
                return band.severity
        raise ValueError(f"{total} is outside {self.name}'s range 0-{self.max_score}")

    def as_dict(self) -> dict[str, Any]:
        """The questionnaire as the portal shows it."""
        return {
            "code": self.code,
            "name": self.name,
            "stem": self.stem,
            "items": [{"number": n, "text": text} for n, text in enumerate(self.items, start=1)],
            "options": [{"value": value, "label": label} for value, label in RESPONSE_OPTIONS],
            "bands": [
                {"severity": band.severity, "low": band.low, "high": band.high}
                for band in self.bands
            ],
            "citation": self.citation,
        }


PHQ9 = Questionnaire(
    code="phq9",
    name="PHQ-9",
    stem="Over the last 2 weeks, how often have you been bothered by any of the following "
    "problems?",
    items=(
        "Little interest or pleasure in doing things",
        "Feeling down, depressed, or hopeless",
        "Trouble falling or staying asleep, or sleeping too much",
        "Feeling tired or having little energy",
        "Poor appetite or overeating",
        "Feeling bad about yourself - or that you are a failure or have let yourself or your "
        "family down",
        "Trouble concentrating on things, such as reading the newspaper or watching television",
        "Moving or speaking so slowly that other people could have noticed? Or the opposite - "
        "being so fidgety or restless that you have been moving around a lot more than usual",
        "Thoughts that you would be better off dead or of hurting yourself in some way",
    ),
    bands=(
        Band("minimal", 0, 4),
        Band("mild", 5, 9),
        Band("moderate", 10, 14),
        Band("moderately_severe", 15, 19),
        Band("severe", 20, 27),
    ),
    citation="Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief depression "
    "severity measure. J Gen Intern Med. 2001;16(9):606-613. "
    "doi:10.1046/j.1525-1497.2001.016009606.x",
)
"""The Patient Health Questionnaire, nine items (Kroenke, Spitzer & Williams, J Gen Intern Med
2001;16:606-613, doi:10.1046/j.1525-1497.2001.016009606.x). Total 0-27; cut points 5, 10, 15 and
20 mark mild, moderate, moderately severe and severe depression (Kroenke 2001, abstract).
Item 9 asks about thoughts of death or self-harm: any answer above zero needs a clinician at once
(``integration.services.safety_alert_raise``)."""

#: The PHQ-9 item (1-based) on thoughts of death or self-harm.
PHQ9_SELF_HARM_ITEM = 9

GAD7 = Questionnaire(
    code="gad7",
    name="GAD-7",
    stem="Over the last 2 weeks, how often have you been bothered by the following problems?",
    items=(
        "Feeling nervous, anxious, or on edge",
        "Not being able to stop or control worrying",
        "Worrying too much about different things",
        "Trouble relaxing",
        "Being so restless that it is hard to sit still",
        "Becoming easily annoyed or irritable",
        "Feeling afraid, as if something awful might happen",
    ),
    bands=(
        Band("minimal", 0, 4),
        Band("mild", 5, 9),
        Band("moderate", 10, 14),
        Band("severe", 15, 21),
    ),
    citation="Spitzer RL, Kroenke K, Williams JBW, Lowe B. A brief measure for assessing "
    "generalized anxiety disorder: the GAD-7. Arch Intern Med. 2006;166(10):1092-1097. "
    "doi:10.1001/archinte.166.10.1092",
)
"""The Generalized Anxiety Disorder scale, seven items (Spitzer, Kroenke, Williams & Lowe, Arch
Intern Med 2006;166:1092-1097, doi:10.1001/archinte.166.10.1092). Total 0-21; cut points 5, 10 and
15 mark mild, moderate and severe anxiety (Spitzer 2006)."""

QUESTIONNAIRES: dict[str, Questionnaire] = {PHQ9.code: PHQ9, GAD7.code: GAD7}


@dataclass(frozen=True, slots=True)
class Score:
    instrument: str
    answers: tuple[int, ...]
    total: int
    severity: str

    @property
    def has_self_harm_thoughts(self) -> bool:
        """PHQ-9 item 9 answered above zero."""
        return self.instrument == PHQ9.code and self.answers[PHQ9_SELF_HARM_ITEM - 1] > 0


class AnswerError(ValueError):
    """Answers that cannot be scored; ``errors`` maps a field path to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in errors.items()))


def score(instrument: str, answers: Sequence[object]) -> Score:
    """Score a questionnaire strictly: exactly one integer 0-3 per item, in the published order.

    A missing, extra, fractional, boolean or out-of-range answer is refused rather than guessed;
    the published scoring has no rule for prorating missing items on these short scales.
    """
    questionnaire = QUESTIONNAIRES.get(instrument)
    if questionnaire is None:
        raise AnswerError({"instrument": [f"One of {', '.join(QUESTIONNAIRES)}."]})
    if isinstance(answers, str | bytes) or not isinstance(answers, Sequence):
        raise AnswerError({"answers": ["A list of integers 0 to 3."]})
    count = len(questionnaire.items)
    if len(answers) != count:
        raise AnswerError(
            {"answers": [f"{questionnaire.name} has {count} items; got {len(answers)} answers."]}
        )
    errors: dict[str, list[str]] = {}
    for index, answer in enumerate(answers):
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= 3:
            errors[f"answers[{index}]"] = [f"Item {index + 1}: an integer 0 to 3, got {answer!r}."]
    if errors:
        raise AnswerError(errors)
    values = tuple(int(answer) for answer in answers)  # type: ignore[call-overload]
    total = sum(values)
    return Score(questionnaire.code, values, total, questionnaire.severity(total))
