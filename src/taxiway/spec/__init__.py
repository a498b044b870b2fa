"""The spec: ``taxiway.yaml`` as frozen pydantic models, loaded with line-aware errors."""

from taxiway.spec.durations import format_duration, parse_duration
from taxiway.spec.loader import DEFAULT_SPEC_NAME, find_spec, load_spec, load_spec_text
from taxiway.spec.models import TaxiwaySpec
from taxiway.spec.project import Project
from taxiway.spec.recommend import (
    AlreadySeenFilter,
    AlsGenerator,
    BprGenerator,
    CatalogSpec,
    DenyFilter,
    EaseGenerator,
    Filter,
    Generator,
    InteractionsSpec,
    ItemKnnGenerator,
    OrderingSpec,
    PopularityGenerator,
    RankingSpec,
    RecommendSpec,
    SegmentPopularityGenerator,
    SplitSpec,
    UnavailableFilter,
)
from taxiway.spec.secrets import Secret, redact

__all__ = [
    "DEFAULT_SPEC_NAME",
    "AlreadySeenFilter",
    "AlsGenerator",
    "BprGenerator",
    "CatalogSpec",
    "DenyFilter",
    "EaseGenerator",
    "Filter",
    "Generator",
    "InteractionsSpec",
    "ItemKnnGenerator",
    "OrderingSpec",
    "PopularityGenerator",
    "Project",
    "RankingSpec",
    "RecommendSpec",
    "Secret",
    "SegmentPopularityGenerator",
    "SplitSpec",
    "TaxiwaySpec",
    "UnavailableFilter",
    "find_spec",
    "format_duration",
    "load_spec",
    "load_spec_text",
    "parse_duration",
    "redact",
]
