"""Candidate generators: popularity, segment_popularity, itemknn, ease, als and bpr, one module
each, one role (:class:`~taxiway.recommend.generators.base.Generator`) and one conformance
suite."""

from taxiway.recommend.generators.als import Als
from taxiway.recommend.generators.base import KINDS, Generator, generator_for, load_generator
from taxiway.recommend.generators.bpr import Bpr
from taxiway.recommend.generators.ease import Ease
from taxiway.recommend.generators.itemknn import ItemKnn
from taxiway.recommend.generators.popularity import Popularity
from taxiway.recommend.generators.segment_popularity import SegmentPopularity

__all__ = [
    "KINDS",
    "Als",
    "Bpr",
    "Ease",
    "Generator",
    "ItemKnn",
    "Popularity",
    "SegmentPopularity",
    "generator_for",
    "load_generator",
]
