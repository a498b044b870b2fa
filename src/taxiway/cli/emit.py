"""The commands' lineage: one OpenLineage run per command, and what each one read and wrote.

``with command_run(project, "train") as run:`` around a command's work sends START, then
COMPLETE, or FAIL with the reason: an error, or a command that ends with a non-zero exit (a
check that blocks, a model that does not beat its baseline). The functions below name each
command's datasets from the results it already has (:mod:`taxiway.lineage.datasets`).
Warnings (an endpoint down) go to stderr; lineage never changes a command's exit code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from taxiway.lineage import (
    Assertion,
    Dataset,
    Emitter,
    LineageRun,
    assertions_of,
    model_dataset,
    online_store_dataset,
    recorded_training_set,
    serving_dataset,
    source_dataset,
    training_set_dataset,
)
from taxiway.spec.models import TaxiwaySpec
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.data.check import CheckReport
    from taxiway.features.training_set import TrainingSetManifest
    from taxiway.models.registry import ModelVersion

__all__ = [
    "audited",
    "built",
    "checked",
    "command_run",
    "emitter",
    "materialized",
    "promoted",
    "sources",
    "trained",
    "version_datasets",
]


def emitter(project: Project) -> Emitter:
    """The emitter of ``project``'s lineage section, warning on stderr."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    return Emitter(
        project.spec.lineage,
        state_dir=project.state_dir,
        use_case=project.spec.name,
        warn=lambda message: errors.print(f"[bold yellow]warning:[/] {escape(message)}"),
    )


def _failure(error: BaseException) -> str | None:
    """How a command's exception ends its run: None for exit 0, else the reason."""
    if isinstance(error, typer.Exit):
        return None if error.exit_code == 0 else f"exited with code {error.exit_code}"
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


@contextmanager
def command_run(
    project: Project, command: str, inputs: Iterable[Dataset] = ()
) -> Iterator[LineageRun]:
    """One run of ``command`` for ``project``: START now, COMPLETE or FAIL at the end."""
    with emitter(project).run(command, inputs=inputs, failure=_failure) as run:
        yield run


def sources(spec: TaxiwaySpec, names: Iterable[str] | None = None) -> list[Dataset]:
    """The datasets of ``spec``'s sources (``names``, default all), with their contracts."""
    chosen = list(spec.sources) if names is None else [n for n in names if n in spec.sources]
    return [source_dataset(spec, name) for name in chosen]


def checked(run: LineageRun, spec: TaxiwaySpec, report: CheckReport) -> None:
    """What `taxiway check` observed: each source's contract results as assertions, each
    quarantine file written, and FAIL when a rule blocks."""
    for source in report.sources:
        if source.name not in spec.sources:
            continue
        dataset = source_dataset(spec, source.name)
        if source.validation is not None:
            dataset = dataset.with_assertions(assertions_of(source.validation.results))
            if source.validation.quarantine_path is not None:
                path = Path(source.validation.quarantine_path).absolute()
                run.wrote([Dataset("file", str(path))])
        run.read([dataset])
    if report.blocked:
        blocking = [f for f in report.all_findings() if f.blocks]
        run.error = f"blocked: {len(blocking)} finding(s) with policy block"


def built(run: LineageRun, spec: TaxiwaySpec, manifest: TrainingSetManifest) -> None:
    """What `taxiway features build` read and wrote."""
    run.read(sources(spec, manifest.sources))
    run.wrote([training_set_dataset(manifest)])


def materialized(run: LineageRun, project: Project, views: Iterable[str]) -> None:
    """What `taxiway features materialize` read (the views' sources) and wrote (the store)."""
    spec = project.spec
    names = {spec.features[v].source for v in views if v in spec.features}
    run.read(sources(spec, [n for n in spec.sources if n in names]))
    run.wrote([online_store_dataset(spec, project.state_dir)])


def version_datasets(
    project: Project, v: ModelVersion, stage: str | None = None
) -> tuple[Dataset | None, Dataset]:
    """The training set ``v`` was trained on and ``v`` itself as datasets."""
    namespace = project.spec.lineage.namespace if project.spec.lineage else "taxiway"
    model = model_dataset(namespace, v.name, v.version, v.features, stage=stage or v.stage)
    return recorded_training_set(v.lineage), model


def trained(run: LineageRun, project: Project, v: ModelVersion, *, beats_baseline: bool) -> None:
    """What `taxiway train` read (the sources) and wrote (training set, model version); it
    ends as FAIL when the model does not beat its baseline (the command exits 1)."""
    names = [s.get("name") for s in v.lineage.get("sources", [])]
    run.read(sources(project.spec, [n for n in names if isinstance(n, str)]))
    training_set, model = version_datasets(project, v)
    run.wrote([*([training_set] if training_set else []), model])
    if not beats_baseline:
        run.error = f"{v.name} v{v.version} does not beat its baseline"


def audited(run: LineageRun, project: Project, v: ModelVersion, checks: dict[str, str]) -> None:
    """What `taxiway audit` judged: the version, each check an assertion on it."""
    _, model = version_datasets(project, v)
    assertions = [
        Assertion(name, status == "passed", severity=status)
        for name, status in checks.items()
        if status in ("passed", "warning", "blocker")
    ]
    run.read([model.with_assertions(assertions)])
    if any(status == "blocker" for status in checks.values()):
        run.error = "blocked: the audit found a blocker"


def promoted(run: LineageRun, project: Project, v: ModelVersion) -> None:
    """What `taxiway models promote` changed: the version now in production, and the
    service that answers with it."""
    _, model = version_datasets(project, v, stage="production")
    namespace = model.namespace
    run.wrote([model, serving_dataset(namespace, v.name)])
