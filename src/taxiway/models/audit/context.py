"""What every audit check reads: the spec, the version's record and where each input comes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from taxiway.models.registry import ModelVersion
from taxiway.spec.models import AggregateView, LatestView, StaticView, TaxiwaySpec
from taxiway.spec.project import Project

__all__ = ["AuditContext", "Origin"]

View = AggregateView | LatestView | StaticView


@dataclass(frozen=True)
class Origin:
    """Where a model input comes from at prediction time."""

    view_name: str
    view: View


@dataclass
class AuditContext:
    """The project and model version under audit."""

    project: Project
    version: ModelVersion
    sample: int = 100
    repeats: int = 200
    notes: list[str] = field(default_factory=list)

    @property
    def spec(self) -> TaxiwaySpec:
        """The project's spec."""
        return self.project.spec

    @cached_property
    def origins(self) -> dict[str, Origin]:
        """Feature column → the view that produces it."""
        return {
            column: Origin(name, view)
            for name, view in self.spec.features.items()
            for column in view.output_names(name)
        }

    @property
    def request_fields(self) -> list[str]:
        """The request fields the spec declares."""
        return list(self.spec.model.request_fields) if self.spec.model else []

    @cached_property
    def model_views(self) -> dict[str, View]:
        """The views that produce at least one of the model's inputs."""
        names = {self.origins[f].view_name for f in self.version.features if f in self.origins}
        return {n: v for n, v in self.spec.features.items() if n in names}

    def training_rows(self, limit: int) -> pa.Table | None:
        """Up to ``limit`` rows of the version's training set (None if it is gone)."""
        path = Path(str(self.version.training.get("path", "")))
        if not path.is_file():
            return None
        table = pq.read_table(path)
        if table.num_rows <= limit:
            return table
        step = table.num_rows // limit
        return table.take(pa.array(range(0, step * limit, step)))
