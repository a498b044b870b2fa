"""OpenLineage run events (START, COMPLETE, FAIL) built with ``openlineage-python``.

Each command is a job ``<use case>.<command>`` in the spec's lineage namespace; each run has a
UUIDv7 id shared by its START and its COMPLETE or FAIL event. Datasets carry the standard
facets (``schema``, ``version``, the input facet ``dataQualityAssertions``) and three of
taxiway's own, named with its prefix as the spec asks of custom facets: ``taxiway_contract``
(the data contract a source was read under), ``taxiway_model`` (a model version and its
stage) and ``taxiway_rollout`` (the service's traffic split). Every string in an event passes
:func:`taxiway.lineage.redaction.redact_text` before it leaves.

This module imports ``openlineage`` (the ``lineage`` extra); :mod:`taxiway.lineage.emitter`
imports it only when it has an event to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    InputDatasetFacet,
    JobFacet,
    RunFacet,
    data_quality_assertions_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    schema_dataset,
)
from openlineage.client.serde import Serde
from openlineage.client.uuid import generate_new_uuid

from taxiway.lineage.datasets import Dataset
from taxiway.lineage.redaction import redact_text

__all__ = ["PRODUCER", "new_run_id", "run_event"]


def _producer() -> str:
    try:
        return f"https://pypi.org/project/taxiway/{version('taxiway')}/"
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "https://pypi.org/project/taxiway/"


PRODUCER = _producer()
_FACETS = "https://pypi.org/project/taxiway/#lineage-facets/"


@attr.define
class TaxiwayContractDatasetFacet(DatasetFacet):
    """The data contract a source was read under."""

    path: str
    id: str | None = attr.field(default=None)
    version: str | None = attr.field(default=None)
    sha256: str | None = attr.field(default=None)
    _additional_skip_redact: ClassVar[list[str]] = ["path", "id", "version", "sha256"]

    @staticmethod
    def _get_schema() -> str:
        return _FACETS + "TaxiwayContractDatasetFacet"


@attr.define
class TaxiwayModelDatasetFacet(DatasetFacet):
    """A model version in the registry, and its stage when the event was sent."""

    name: str
    version: int
    stage: str
    _additional_skip_redact: ClassVar[list[str]] = ["name", "version", "stage"]

    @staticmethod
    def _get_schema() -> str:
        return _FACETS + "TaxiwayModelDatasetFacet"


@attr.define
class TaxiwayRolloutDatasetFacet(DatasetFacet):
    """The service's split between control and candidate under a rollout."""

    rollout: int
    control: str
    candidate: int
    share: float
    state: str
    step: int
    transition: str | None = attr.field(default=None)
    _additional_skip_redact: ClassVar[list[str]] = ["control", "state", "transition"]

    @staticmethod
    def _get_schema() -> str:
        return _FACETS + "TaxiwayRolloutDatasetFacet"


def new_run_id() -> str:
    """A new run id: a UUIDv7 (ids sort by the millisecond they were made), as OpenLineage
    recommends."""
    return str(generate_new_uuid())


def run_event(
    state: str,
    *,
    run_id: str,
    namespace: str,
    job: str,
    inputs: Sequence[Dataset] = (),
    outputs: Sequence[Dataset] = (),
    error: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One run event as a JSON-ready dict: ``state`` is START, COMPLETE or FAIL.

    >>> from taxiway.lineage.datasets import model_dataset
    >>> event = run_event("COMPLETE", run_id=new_run_id(), namespace="taxiway", job="churn.train",
    ...                   outputs=[model_dataset("taxiway", "churn", 1, ["x"], stage="candidate")])
    >>> event["eventType"], event["outputs"][0]["facets"]["taxiway_model"]["version"]
    ('COMPLETE', 1)
    """
    run_facets: dict[str, RunFacet] = {}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=redact_text(error), programmingLanguage="python", producer=PRODUCER
        )
    job_facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="TAXIWAY", jobType="COMMAND", producer=PRODUCER
        )
    }
    event = RunEvent(
        eventType=RunState[state],
        eventTime=(at or datetime.now(UTC)).isoformat(),
        run=Run(runId=run_id, facets=run_facets),
        job=Job(namespace=namespace, name=job, facets=job_facets),
        inputs=[_input(d) for d in inputs],
        outputs=[_output(d) for d in outputs],
        producer=PRODUCER,
    )
    document: dict[str, Any] = _redacted(Serde.to_dict(event))
    return document


def _facets(dataset: Dataset) -> dict[str, DatasetFacet]:
    facets: dict[str, DatasetFacet] = {}
    if dataset.fields:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=f.name, type=f.type, description=f.description
                )
                for f in dataset.fields
            ],
            producer=PRODUCER,
        )
    if dataset.version is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=dataset.version, producer=PRODUCER
        )
    if dataset.contract is not None:
        c = dataset.contract
        facets["taxiway_contract"] = TaxiwayContractDatasetFacet(
            path=c.path, id=c.id, version=c.version, sha256=c.sha256, producer=PRODUCER
        )
    if dataset.model is not None:
        m = dataset.model
        facets["taxiway_model"] = TaxiwayModelDatasetFacet(
            name=m["name"], version=m["version"], stage=m["stage"], producer=PRODUCER
        )
    if dataset.rollout is not None:
        facets["taxiway_rollout"] = TaxiwayRolloutDatasetFacet(producer=PRODUCER, **dataset.rollout)
    return facets


def _input(dataset: Dataset) -> InputDataset:
    input_facets: dict[str, InputDatasetFacet] = {}
    if dataset.assertions:
        facet = data_quality_assertions_dataset
        input_facets["dataQualityAssertions"] = facet.DataQualityAssertionsDatasetFacet(
            assertions=[
                facet.Assertion(
                    assertion=a.assertion,
                    success=a.success,
                    column=a.column,
                    severity=a.severity,
                    actual=a.actual,
                    expected=a.expected,
                )
                for a in dataset.assertions
            ],
            producer=PRODUCER,
        )
    return InputDataset(
        namespace=dataset.namespace,
        name=dataset.name,
        facets=_facets(dataset),
        inputFacets=input_facets,
    )


def _output(dataset: Dataset) -> OutputDataset:
    return OutputDataset(namespace=dataset.namespace, name=dataset.name, facets=_facets(dataset))


def _redacted(value: Any) -> Any:
    """``value`` with every URL password and ``password=`` parameter in its strings masked."""
    if isinstance(value, str):
        return redact_text(value) if ("@" in value or "assword" in value) else value
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
