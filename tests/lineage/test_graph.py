"""The graph of a version, from contracts to the service, as text and as SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from taxiway.lineage.graph import LineageGraph, build_graph
from taxiway.lineage.svg import lineage_svg

LINEAGE: dict[str, Any] = {
    "training_set": {"path": "/s/training.parquet", "rows": 1200, "fingerprint": "f"},
    "views": [
        {"name": "orders_30d", "source": "orders", "used": ["n_30d", "spend_30d"]},
        {"name": "profile", "source": "customers", "used": ["segment"]},
    ],
    "request_fields": ["basket"],
    "label": {"name": "churned", "source": "orders"},
    "sources": [
        {
            "name": "orders",
            "kind": "file",
            "rows": 5000,
            "contract": {"path": "/c/orders.yaml", "id": "shop-orders", "version": "1.2.0"},
        },
        {"name": "customers", "kind": "postgres", "rows": None, "contract": None},
    ],
}


def test_the_graph_runs_from_contracts_to_the_served_version() -> None:
    graph = build_graph("churn", 3, LINEAGE, stage="production", served=3)
    assert [layer for layer, _ in graph.columns()] == [
        "contracts",
        "sources",
        "views",
        "training set",
        "model",
        "service",
    ]
    edges = set(graph.edges)
    assert ("contract:/c/orders.yaml", "source:orders") in edges
    assert ("source:orders", "view:orders_30d") in edges
    assert ("source:orders", "label:churned") in edges
    assert ("request", "training_set") in edges
    assert ("training_set", "model") in edges
    assert ("model", "service") in edges
    text = "\n".join(graph.lines())
    assert "contract shop-orders v1.2.0" in text
    assert "source customers (postgres)" in text
    assert "served: v3 in production ← model churn v3" in text


def test_a_version_not_served_says_which_is() -> None:
    graph = build_graph("churn", 4, LINEAGE, stage="candidate", served=3)
    assert "not served: v3 is in production" in graph.lines()[-1]
    assert ("model", "service") not in graph.edges
    assert (
        "no version is in production"
        in build_graph("churn", 4, LINEAGE, stage="candidate", served=None).lines()[-1]
    )


def test_a_version_without_lineage_still_draws_itself() -> None:
    graph = build_graph("churn", 1, {}, stage="candidate", served=None)
    assert [layer for layer, _ in graph.columns()] == ["training set", "model", "service"]


def test_the_graph_survives_json() -> None:
    graph = build_graph("churn", 3, LINEAGE, stage="production", served=3)
    again = LineageGraph.from_dict(json.loads(json.dumps(graph.as_dict())))
    assert again.lines() == graph.lines()


def test_the_svg_is_well_formed_with_a_box_per_node_and_a_line_per_edge() -> None:
    lineage = {**LINEAGE, "views": [{"name": "<script>alert(1)</script>", "source": "orders"}]}
    graph = build_graph("churn", 3, lineage, stage="production", served=3)
    svg = lineage_svg(graph)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}g")) == len(graph.nodes)
    assert len(root.findall(f"{ns}line")) == len(graph.edges)
    assert "<script>" not in svg
