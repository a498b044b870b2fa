"""The fallback chain: what answers, in order, when the model cannot.

Declared in ``serving.fallback``: ``previous`` (the previous production version, when the
model itself failed and its inputs are at hand), ``baseline`` (the baseline trained with the
model: a prior or a one-feature rule, computable from whatever inputs are known) and constants
(``0.5``). The chain always ends with the training prior, so there is always an answer.

>>> parse_chain(["baseline", "0.1"])
[Step(kind='baseline', value=None), Step(kind='constant', value=0.1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from taxiway.errors import ServingError

__all__ = ["Step", "parse_chain"]


@dataclass(frozen=True)
class Step:
    """One link: ``previous``, ``baseline`` or a ``constant`` value."""

    kind: Literal["previous", "baseline", "constant"]
    value: float | None = None

    @property
    def label(self) -> str:
        """The ``path`` an answer from this step reports: ``fallback:<label>``."""
        return f"constant:{self.value:g}" if self.kind == "constant" else self.kind


def parse_chain(declared: str | Sequence[str] | None) -> list[Step]:
    """The steps of ``serving.fallback`` (a name, a number or a list of them)."""
    if declared is None:
        return []
    items = [declared] if isinstance(declared, str) else list(declared)
    steps: list[Step] = []
    for item in items:
        text = str(item).strip()
        if text in ("previous", "baseline"):
            steps.append(Step(text))  # type: ignore[arg-type]
            continue
        try:
            steps.append(Step("constant", float(text)))
        except ValueError:
            raise ServingError(
                f"serving.fallback: unknown fallback `{text}`",
                fix="use previous, baseline, or a number such as 0.5",
            ) from None
    return steps
