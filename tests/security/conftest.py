"""The security tests reuse the serving tests' trained shop and recommender worlds."""

from __future__ import annotations

from tests.serving.conftest import shop
from tests.serving.recommend_world import trained_world

__all__ = ["shop", "trained_world"]  # session fixtures, used by name
