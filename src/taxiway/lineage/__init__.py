"""OpenLineage run events for every command, and the lineage graph of a model version.

Each command (`check`, `features build`, `features materialize`, `train`, `audit`,
`models promote`, each rollout step) is a job whose runs send START and COMPLETE or FAIL
events with the datasets they read and wrote (:mod:`.datasets`, :mod:`.events`), to a file in
the state folder or to an OpenLineage endpoint (:mod:`.transport`), never failing the command
(:mod:`.emitter`). `taxiway lineage` draws a version's graph from the lineage the registry
records (:mod:`.graph`, :mod:`.svg`) beside the runs the events recorded (:mod:`.history`).
See docs/lineage.md.
"""

from taxiway.lineage.datasets import (
    Assertion,
    ContractRef,
    Dataset,
    SchemaField,
    assertions_of,
    model_dataset,
    online_store_dataset,
    recorded_training_set,
    rollout_dataset,
    serving_dataset,
    source_dataset,
    training_set_dataset,
    url_namespace,
)
from taxiway.lineage.emitter import Emitter, LineageRun, lineage_folder
from taxiway.lineage.graph import LineageGraph, Node, build_graph
from taxiway.lineage.history import RunSummary, latest_runs
from taxiway.lineage.redaction import redact_text
from taxiway.lineage.svg import lineage_svg
from taxiway.lineage.transport import EVENTS_FILE, FileTransport, HttpTransport

__all__ = [
    "EVENTS_FILE",
    "Assertion",
    "ContractRef",
    "Dataset",
    "Emitter",
    "FileTransport",
    "HttpTransport",
    "LineageGraph",
    "LineageRun",
    "Node",
    "RunSummary",
    "SchemaField",
    "assertions_of",
    "build_graph",
    "latest_runs",
    "lineage_folder",
    "lineage_svg",
    "model_dataset",
    "online_store_dataset",
    "recorded_training_set",
    "redact_text",
    "rollout_dataset",
    "serving_dataset",
    "source_dataset",
    "training_set_dataset",
    "url_namespace",
]
