"""The time split: the newest share of spine times is validation, never a random sample.

A random split lets the model see next month's rows while being judged on this month's, which
flatters it; production only ever scores the future. Every row at one spine time lands on the
same side, and every validation time is later than every training time.

>>> import numpy as np
>>> times = np.array(["2024-01-01", "2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"],
...                  dtype="datetime64[us]")
>>> split = time_split(times, 0.25)
>>> split.train.tolist(), split.valid.tolist()
([True, True, True, True, False], [False, False, False, False, True])
>>> str(split.cut)
'2024-01-22T00:00:00.000000'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxiway.errors import ModelError

__all__ = ["TimeSplit", "time_split"]


@dataclass(frozen=True)
class TimeSplit:
    """Boolean masks over the rows, and the first validation time."""

    train: np.ndarray
    valid: np.ndarray
    cut: np.datetime64

    def describe(self) -> str:
        """One line for reports."""
        return (
            f"{int(self.train.sum()):,} training rows before {self.cut_text}, "
            f"{int(self.valid.sum()):,} validation rows from it on"
        )

    @property
    def cut_text(self) -> str:
        """The cut as ISO text (to the second when that is exact)."""
        whole = self.cut.astype("datetime64[s]")
        return str(np.datetime_as_string(self.cut, unit="s" if whole == self.cut else "us"))


def time_split(times: np.ndarray, validation: float) -> TimeSplit:
    """Hold out the newest ``validation`` share (0 < share < 1) of the distinct spine times."""
    if not 0 < validation < 1:
        raise ModelError(
            f"the validation share must be between 0 and 1, got {validation}",
            fix="set model.validation to e.g. 0.2",
        )
    distinct = np.unique(times)
    if len(distinct) < 2:
        raise ModelError(
            f"the training set has {len(distinct)} distinct spine time(s): a time split needs "
            "at least two",
            fix="widen the spine (start/end) or use an event spine with more events",
        )
    held = min(max(1, round(len(distinct) * validation)), len(distinct) - 1)
    cut = distinct[len(distinct) - held]
    valid = times >= cut
    return TimeSplit(train=~valid, valid=valid, cut=cut)
