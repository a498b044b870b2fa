"""Recommendation use cases (``recommend:`` in the spec): interactions split by time, candidate
generators, filters taxiway enforces, ordering, evaluation against popularity, and the fitted
pipeline the service answers ``/v1/recommend`` with."""
