"""Figures and target checks that the scenarios return and the report prints."""

from __future__ import annotations

import operator
from collections.abc import Callable

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<": operator.lt}


class Figure:
    """One measured value with its unit, for the figures table."""

    __slots__ = ("name", "value", "unit", "note")

    def __init__(self, name: str, value: float | None, unit: str, note: str = "") -> None:
        self.name = name
        self.value = value
        self.unit = unit
        self.note = note


class Target:
    """A target such as ``ingest rate >= 50,000 events/s`` and the value measured for it.

    ``measured`` None means the value could not be measured in this run.
    """

    __slots__ = ("name", "measured", "comparison", "goal", "unit", "not_judged")

    def __init__(self, name: str, measured: float | None, comparison: str, goal: float, unit: str) -> None:
        if comparison not in _COMPARISONS:
            raise ValueError(f"Invalid comparison {comparison!r}: expected one of {', '.join(_COMPARISONS)}.")
        self.name = name
        self.measured = measured
        self.comparison = comparison
        self.goal = goal
        self.unit = unit
        # Why the target is not judged in this run, None when it is.
        self.not_judged: str | None = None

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return _COMPARISONS[self.comparison](self.measured, self.goal)

    def shortfall(self) -> str:
        """Return how far the measured value is from the goal, e.g. ``38 % below``; empty when met."""
        if not self.met and self.measured is not None and self.goal:
            if self.comparison == ">=":
                return f"{(1 - self.measured / self.goal) * 100:.0f} % below"
            return f"{(self.measured / self.goal - 1) * 100:.0f} % above"
        return ""


class ScenarioResult:
    """Figures, targets, setup notes and profile summaries of one scenario."""

    def __init__(self, key: str, title: str) -> None:
        self.key = key
        self.title = title
        self.setup: list[str] = []
        self.figures: list[Figure] = []
        self.targets: list[Target] = []
        self.notes: list[str] = []
        self.profiles: list[tuple[str, str]] = []
        # Values that later scenarios use, such as the maximum delivery rate.
        self.values: dict[str, float] = {}
        # Seconds the scenario took; None for the second result of a scenario that gives two.
        self.seconds: float | None = 0.0
        # Load averages at the start and the end of the scenario, as text.
        self.load = "unknown"
        self.error: str | None = None

    def figure(self, name: str, value: float | None, unit: str, note: str = "") -> None:
        self.figures.append(Figure(name, value, unit, note))

    def target(self, name: str, measured: float | None, comparison: str, goal: float, unit: str) -> None:
        self.targets.append(Target(name, measured, comparison, goal, unit))
