"""The lineage graph of one model version, from contracts to the service, in layered columns.

It is drawn from the lineage the registry records with every version
(:func:`taxiway.models.lineage.build_lineage`): contract versions → sources → feature views
(and the label, and request fields) → training set → model version → the service. The
service's column says whether this version is the one served (the registry's production
version) or which one is.

>>> lineage = {"training_set": {"path": "t.parquet", "rows": 10},
...     "sources": [{"name": "orders", "kind": "file", "rows": 10,
...                  "contract": {"path": "c.yaml", "id": "orders", "version": "1.0.0"}}],
...     "views": [{"name": "spend", "source": "orders", "used": ["spend_30d"]}],
...     "label": {"name": "churned", "source": "orders"}}
>>> graph = build_graph("churn", 2, lineage, stage="production", served=2)
>>> print("\\n".join(graph.lines()))
lineage of churn v2 (production)
contracts     contract orders v1.0.0
sources       source orders (file, 10 rows) ← contract orders v1.0.0
views         view spend (spend_30d) ← source orders
              label churned ← source orders
training set  training set t.parquet (10 rows) ← view spend, label churned
model         model churn v2 ← training set t.parquet
service       served: v2 in production ← model churn v2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LAYERS", "LineageGraph", "Node", "build_graph"]

LAYERS = ("contracts", "sources", "views", "training set", "model", "service")


@dataclass(frozen=True)
class Node:
    """One box: its layer, what it is, and a line of detail."""

    id: str
    layer: str
    label: str
    detail: str = ""


@dataclass
class LineageGraph:
    """Nodes by layer and the edges between them (``(from id, to id)``)."""

    title: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def add(self, node: Node, *parents: str) -> None:
        """Add ``node`` (once) and an edge from each of ``parents`` that is in the graph."""
        if all(n.id != node.id for n in self.nodes):
            self.nodes.append(node)
        known = {n.id for n in self.nodes}
        for parent in parents:
            if parent in known and (parent, node.id) not in self.edges:
                self.edges.append((parent, node.id))

    def columns(self) -> list[tuple[str, list[Node]]]:
        """The non-empty layers, left to right, each with its nodes."""
        return [
            (layer, nodes)
            for layer in LAYERS
            if (nodes := [n for n in self.nodes if n.layer == layer])
        ]

    def lines(self) -> list[str]:
        """The graph as text: one line per node, under its layer, with what it comes from."""
        labels = {n.id: n.label for n in self.nodes}
        width = max(len(layer) for layer in LAYERS) + 2
        lines = [self.title]
        for layer, nodes in self.columns():
            for i, node in enumerate(nodes):
                parents = [labels[a] for a, b in self.edges if b == node.id]
                head = (layer if i == 0 else "").ljust(width)
                detail = f" ({node.detail})" if node.detail else ""
                arrow = f" ← {', '.join(parents)}" if parents else ""
                lines.append(f"{head}{node.label}{detail}{arrow}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``taxiway lineage --json``, and the sprint's report)."""
        return {
            "title": self.title,
            "nodes": [vars(n) for n in self.nodes],
            "edges": [list(e) for e in self.edges],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageGraph:
        """The graph :meth:`as_dict` wrote."""
        return cls(
            data["title"],
            [Node(**n) for n in data.get("nodes", [])],
            [(a, b) for a, b in data.get("edges", [])],
        )


def build_graph(
    name: str, version: int, lineage: dict[str, Any], *, stage: str, served: int | None
) -> LineageGraph:
    """The graph of version ``version`` of model ``name`` from its recorded ``lineage``;
    ``served`` is the version in production (None: none is)."""
    graph = LineageGraph(f"lineage of {name} v{version} ({stage})")
    for source in lineage.get("sources", []):
        parents = []
        contract = source.get("contract")
        if contract:
            label = f"contract {contract.get('id') or Path(contract['path']).name}"
            label += f" v{contract['version']}" if contract.get("version") else " (unversioned)"
            graph.add(Node(f"contract:{contract['path']}", "contracts", label))
            parents.append(f"contract:{contract['path']}")
        rows = source.get("rows")
        detail = ", ".join(
            part
            for part in (source.get("kind"), None if rows is None else f"{rows:,} rows")
            if part
        )
        node = Node(f"source:{source['name']}", "sources", f"source {source['name']}", detail)
        graph.add(node, *parents)
    inputs = []
    for view in lineage.get("views", []):
        node = Node(
            f"view:{view['name']}", "views", f"view {view['name']}", ", ".join(view.get("used", []))
        )
        _add_from_source(graph, node, view.get("source"))
        inputs.append(node.id)
    target = lineage.get("label") or {}
    if target.get("name"):
        node = Node(f"label:{target['name']}", "views", f"label {target['name']}")
        _add_from_source(graph, node, target.get("source"))
        inputs.append(node.id)
    if lineage.get("request_fields"):
        graph.add(Node("request", "views", "request fields", ", ".join(lineage["request_fields"])))
        inputs.append("request")
    training = lineage.get("training_set") or {}
    rows = training.get("rows")
    graph.add(
        Node(
            "training_set",
            "training set",
            f"training set {Path(str(training.get('path'))).name}",
            "" if rows is None else f"{rows:,} rows",
        ),
        *inputs,
    )
    graph.add(Node("model", "model", f"model {name} v{version}"), "training_set")
    if served == version:
        graph.add(Node("service", "service", f"served: v{version} in production"), "model")
    elif served is None:
        graph.add(Node("service", "service", "not served: no version is in production"))
    else:
        graph.add(Node("service", "service", f"not served: v{served} is in production"))
    return graph


def _add_from_source(graph: LineageGraph, node: Node, source: str | None) -> None:
    graph.add(node, *([f"source:{source}"] if source else []))
