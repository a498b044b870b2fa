"""deploy/ stays true to the service: the Kubernetes manifests parse, name each other
consistently, probe routes the service has, pass `taxiway serve` options it takes, and scale on
a counter it exports; the Argo Rollouts wiring is the one docs/rollout-hooks.md explains.

No Kubernetes API server is reachable here, so neither ``kubectl --dry-run=client`` (it asks the
server for its resource types) nor kubeconform (its JSON schemas are downloaded) can run; when
kubectl is installed, ``kubectl kustomize`` builds both kustomizations. The live probe paths and
the metric are checked against running replicas in tests/serving/test_replicas.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer.main
from ruamel.yaml import YAML

from taxiway.cli.app import app
from taxiway.serving.metrics import Metrics

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
ARGO = ROOT / "deploy" / "argo"
DOC = ROOT / "docs" / "rollout-hooks.md"


def _load(path: Path) -> list[dict[str, Any]]:
    yaml = YAML(typ="safe", pure=True)
    return [doc for doc in yaml.load_all(path.read_text()) if doc is not None]


def _all() -> list[dict[str, Any]]:
    return [
        doc
        for folder in (K8S, ARGO)
        for path in sorted(folder.glob("*.yaml"))
        if path.name not in ("kustomization.yaml", "prometheus-adapter.yaml")
        for doc in _load(path)
    ]


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _all() if doc["kind"] == kind]


def _one(kind: str) -> dict[str, Any]:
    [doc] = _by_kind(kind)
    return doc


def _container() -> dict[str, Any]:
    [container] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_every_object_has_api_version_kind_and_name() -> None:
    objects = _all()
    assert {o["kind"] for o in objects} >= {
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "AnalysisTemplate",
        "Rollout",
    }
    for o in objects:
        assert re.fullmatch(r"([a-z0-9.]+/)?v\d+(alpha\d+|beta\d+)?", o["apiVersion"]), o
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", o["metadata"]["name"]), o


def test_the_kustomizations_list_files_that_exist() -> None:
    for folder in (K8S, ARGO):
        for name in _load(folder / "kustomization.yaml")[0]["resources"]:
            assert (folder / name).exists(), f"{folder}/kustomization.yaml: {name}"


def test_selectors_select_the_pods() -> None:
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        _one("Deployment")["spec"]["selector"]["matchLabels"],
        _one("Service")["spec"]["selector"],
        _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        _one("Rollout")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()


def test_ports_and_probes_agree() -> None:
    container = _container()
    names = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert names["http"] == int(args[args.index("--port") + 1])
    [port] = _one("Service")["spec"]["ports"]
    assert port["targetPort"] in names
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] in names
        assert get["path"] in {"/v2/health/live", "/v2/health/ready"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    annotations = _one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == names["http"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_container_runs_taxiway_serve_with_options_it_takes() -> None:
    args = _container()["args"]
    assert args[:2] == ["taxiway", "serve"]
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    options = {o for p in serve.params for o in p.opts}
    given = {a for a in args[2:] if a.startswith("-")}
    assert given <= options, given - options
    # a non-loopback address needs an API key: the spec names one the Secret holds
    spec = YAML(typ="safe", pure=True).load(_one("ConfigMap")["data"]["taxiway.yaml"])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert spec["serving"]["auth"]["key_env"] in _one("Secret")["stringData"]


def test_the_spec_points_at_the_mounted_shared_state() -> None:
    spec = YAML(typ="safe", pure=True).load(_one("ConfigMap")["data"]["taxiway.yaml"])
    mounts = {m["name"]: m for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in _one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert mounts["predictions"]["mountPath"] == spec["serving"]["log"]["path"]
    assert mounts["models"]["mountPath"] == spec["registry"]["artifacts"]
    claims = {c["metadata"]["name"]: c for c in _by_kind("PersistentVolumeClaim")}
    for name in ("predictions", "models"):
        claim = claims[volumes[name]["persistentVolumeClaim"]["claimName"]]
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every pod mounts it
    assert spec["registry"]["kind"] == "postgres"
    assert spec["online_store"]["kind"] == "redis"
    secret = _one("Secret")["stringData"]
    for url in (spec["registry"]["url"], spec["online_store"]["url"]):
        assert url.strip("${}") in secret  # from the environment, never the file


def test_the_hpa_scales_on_a_rate_of_a_counter_the_service_exports() -> None:
    hpa = _one("HorizontalPodAutoscaler")["spec"]
    deployment = _one("Deployment")
    assert hpa["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] >= 2  # the PDB lets one go
    [metric] = hpa["metrics"]
    [rule] = _load(K8S / "prometheus-adapter.yaml")[0]["rules"]["custom"]
    assert metric["pods"]["metric"]["name"] == rule["name"]["as"]
    exported = f"{Metrics().requests._name}_total"  # what /metrics shows for the counter
    assert rule["name"]["matches"] == f"^{exported}$"
    assert rule["seriesQuery"].startswith(exported + "{")
    assert '/v1/predict|/v2/models/\\\\{name\\\\}/infer"' in rule["metricsQuery"]


def test_the_argo_wiring_is_the_documented_one() -> None:
    blocks = [
        YAML(typ="safe", pure=True).load(b)
        for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    ]
    documented = [b for b in blocks if b["kind"] == "AnalysisTemplate"]
    assert documented == [_one("AnalysisTemplate")]
    rollout = _one("Rollout")["spec"]
    assert rollout["workloadRef"]["name"] == _one("Deployment")["metadata"]["name"]
    [template] = rollout["strategy"]["canary"]["analysis"]["templates"]
    assert template["templateName"] == _one("AnalysisTemplate")["metadata"]["name"]
    [arg] = rollout["strategy"]["canary"]["analysis"]["args"]
    url = urlparse(arg["value"])
    service = _one("Service")
    assert url.path == "/v1/rollout/verdict"
    assert url.hostname is not None
    assert url.hostname.split(".")[0] == service["metadata"]["name"]
    assert url.port == service["spec"]["ports"][0]["port"]
    patched = _load(ARGO / "kustomization.yaml")[0]["patches"][0]
    assert "kind: Rollout" in patched["patch"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("folder", [K8S, ARGO], ids=["k8s", "argo"])
def test_kubectl_kustomize_builds(folder: Path) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    docs = {doc["kind"]: doc for doc in YAML(typ="safe", pure=True).load_all(built.stdout)}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= set(docs)
    assert {doc["metadata"]["namespace"] for doc in docs.values()} == {"models"}
    scaled = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["kind"]
    assert scaled == ("Rollout" if folder == ARGO else "Deployment")
