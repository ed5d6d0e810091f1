"""The paper's standards (supplementary §E): number, word and sentence forms, custom levels, and
the free form of Table 3 row 1 (no standard: the model writes a decimal score).

Level k (1..K) is answered with the digit ``k``: one token in every tokenizer the
reference scorers use. Texts follow the supplementary verbatim for the forms it
prints; sentences for K != 7 are written in the same style.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from iqa_core.api import Params, Standard

SYSTEM_HEAD = (
    "You are a helpful assistant to help me evaluate the quality of the image. "
    "You will be given standards about each quality level. "
    "The quality standard is listed as follows: "
)
SYSTEM_TAIL = (
    "The higher the image quality, the higher the score should be. "
    "Please strictly follow the USER's format, otherwise the result will be invalid."
)
NUMBER_SYSTEM = "You are a helpful assistant to help me evaluate the quality of the image. " + SYSTEM_TAIL

# Best level first, as the paper lists them.
WORDS: dict[int, tuple[str, ...]] = {
    3: ("Excellent", "Fair", "Poor"),
    5: ("Excellent", "Good", "Fair", "Bad", "Poor"),
    7: ("Perfect", "Excellent", "Good", "Fair", "Bad", "Poor", "Very Bad"),
    9: ("Perfect", "Excellent", "Very Good", "Good", "Fair", "Bad", "Poor", "Awful", "Very Bad"),
}

# The K=7 sentences are the supplementary's; the rest are written in their style.
SENTENCES: dict[str, str] = {
    "Perfect": "The overall quality of the image is unparalleled, with every detail meeting the highest standards.",
    "Excellent": "The overall quality of the image is excellent, with all aspects being exemplary and without flaw.",
    "Very Good": "The overall quality of the image is very good, with only negligible imperfections.",
    "Good": "The overall quality of the image is good, and it is satisfactory in many aspects.",
    "Fair": "The overall quality of the image is fair. There are certain merits but also some deficiencies.",
    "Bad": "The overall quality of the image is bad, with noticeable shortcomings.",
    "Poor": "The overall quality of the image is poor, with obvious defects.",
    "Awful": "The overall quality of the image is awful, with severe defects throughout.",
    "Very Bad": "The overall quality of the image is very bad and hard to accept.",
}


# The free standard's optional example: inside each range and not a level, so it does not suggest integers.
# Off by default: a number in the prompt can anchor the model's answers.
FREE_EXAMPLE: dict[int, str] = {3: "2.4", 5: "3.6", 7: "4.3", 9: "6.2"}


def user_prompt(labels: tuple[str, ...]) -> str:
    return (
        f"please evaluate the quality of the image and score in [{','.join(labels)}]. "
        "Only tell me the number. Do not analyze the image."
    )


class _DigitStandard(Standard):
    """Shared shape: K levels answered by the digits 1..K, best level described first."""

    class Params(Params):
        levels: Literal[3, 5, 7, 9] = 7

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(float(v) for v in range(1, self.params.levels + 1))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(str(v) for v in range(1, self.params.levels + 1))

    @property
    def words(self) -> tuple[str, ...]:
        """Level words in ascending order (worst first), aligned with ``values``."""
        return tuple(reversed(WORDS[self.params.levels]))

    @property
    def descriptions(self) -> tuple[str, ...]:
        return self.words

    @property
    def user(self) -> str:
        return user_prompt(self.labels)


class NumberStandard(_DigitStandard):
    """Number standard: score in [1..K] with no level descriptions (Table 3 row 2)."""

    @property
    def system(self) -> str:
        return NUMBER_SYSTEM


class WordStandard(_DigitStandard):
    """Word standard: each level a number and a word, e.g. '7: Perfect' (the paper's choice)."""

    @property
    def system(self) -> str:
        levels = reversed(list(zip(self.labels, self.words)))
        pairs = ", ".join(f"{label}: {word}" for label, word in levels)
        return f"{SYSTEM_HEAD}{pairs}. {SYSTEM_TAIL}"


class SentenceStandard(_DigitStandard):
    """Sentence standard: each level a number, a word and a describing sentence."""

    @property
    def descriptions(self) -> tuple[str, ...]:
        return tuple(f"{w}! {SENTENCES[w]}" for w in self.words)

    @property
    def system(self) -> str:
        lines = "\n".join(f"{label}: {text}" for label, text in reversed(list(zip(self.labels, self.descriptions))))
        tail = SYSTEM_TAIL.replace(". ", ".\n", 1)  # the supplementary breaks these lines here
        return f"{SYSTEM_HEAD.rstrip()}\n{lines}\n{tail}"


class FreeStandard(_DigitStandard):
    """No standard: the model writes a decimal score in [1, K] (Table 3 row 1, answer: generate).

    The paper does not print this row's prompt; the user text is ours. The system text is the
    number standard's, which lists no levels. ``example: true`` adds "such as 4.3" (a decimal
    that is not a level); it is off by default because a number in the prompt can anchor answers.
    """

    class Params(_DigitStandard.Params):
        example: bool = Field(False, description='add an example decimal ("such as 4.3") to the question')

    @property
    def system(self) -> str:
        return NUMBER_SYSTEM

    @property
    def user(self) -> str:
        k = self.params.levels
        example = f" such as {FREE_EXAMPLE[k]}" if self.params.example else ""
        return (
            f"please evaluate the quality of the image and score in the range 1 to {k}, "
            f"a decimal number{example}. Only tell me the number. Do not analyze the image."
        )


class CustomLevel(Params):
    value: float
    label: str = Field(min_length=1)
    description: str = ""


class CustomStandard(Standard):
    """User-defined levels from the recipe: values, answer labels, descriptions and texts."""

    class Params(Params):
        levels: list[CustomLevel] = Field(min_length=2)
        system: str | None = None
        user: str | None = None

        @model_validator(mode="after")
        def _distinct(self) -> CustomStandard.Params:
            values = [lv.value for lv in self.levels]
            labels = [lv.label for lv in self.levels]
            if len(set(values)) != len(values):
                raise ValueError("level values must be distinct")
            if len(set(labels)) != len(labels):
                raise ValueError("level labels must be distinct")
            return self

    def _sorted(self) -> list[CustomLevel]:
        return sorted(self.params.levels, key=lambda lv: lv.value)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(lv.value for lv in self._sorted())

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(lv.label for lv in self._sorted())

    @property
    def descriptions(self) -> tuple[str, ...]:
        return tuple(lv.description or lv.label for lv in self._sorted())

    @property
    def system(self) -> str:
        if self.params.system is not None:
            return self.params.system
        pairs = ", ".join(
            f"{lv.label}: {lv.description}" if lv.description else lv.label for lv in reversed(self._sorted())
        )
        return f"{SYSTEM_HEAD}{pairs}. {SYSTEM_TAIL}"

    @property
    def user(self) -> str:
        return self.params.user if self.params.user is not None else user_prompt(self.labels)
