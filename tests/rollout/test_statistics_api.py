"""The statistics package's public names: ``__all__`` (kept in ruff's order, RUF022) names
each once, each one importable, and nothing public is left out of it."""

from __future__ import annotations

import inspect

import taxiway.rollout.statistics as statistics


def test_every_name_once_and_every_name_exists() -> None:
    assert len(statistics.__all__) == len(set(statistics.__all__))
    for name in statistics.__all__:
        assert hasattr(statistics, name), name


def test_every_public_function_and_class_is_exported() -> None:
    public = {
        name
        for name, value in vars(statistics).items()
        if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
    }
    assert public <= set(statistics.__all__)
