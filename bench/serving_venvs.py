"""MLflow and BentoML in venvs of their own under ``bench/.data/serving/`` (pinned, so a rerun
measures the same thing), what each peer needs before it can serve, and ``--setup``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from serving_model import DATA, PEERS, Model
from toolkit import PeerVenv

# the peers' own venvs: pinned, so a rerun measures the same thing
PEER_PACKAGES = {
    "mlflow": ["mlflow==3.17.2", "lightgbm==4.7.0", "scikit-learn==1.9.1"],
    "bentoml": ["bentoml==1.4.39", "lightgbm==4.7.0", "scikit-learn==1.9.1"],
}

PEER_MODULES = {"mlflow": "mlflow.lightgbm, mlflow.pyfunc", "bentoml": "bentoml, lightgbm"}

QUIET_ENV = {  # no telemetry from the peers (nothing may leave the machine anyway)
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "True",
}

PEER_VENVS = {
    name: PeerVenv(
        name, DATA / f"{name}-venv", tuple(packages), PEER_MODULES[name],
        "bench/serving.py --setup", QUIET_ENV,
    )
    for name, packages in PEER_PACKAGES.items()
}  # fmt: skip

PEER_TARGETS = ("mlflow", "bentoml")


def peer_missing(name: str) -> str | None:
    """Why the peer cannot run (None when it can)."""
    missing = PEER_VENVS[name].missing()
    if missing is None and name == "mlflow" and not (DATA / "mlflow-model" / "MLmodel").exists():
        return "no MLflow model folder: run `bench/serving.py --setup`"
    return missing


def setup(model: Model) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    if shutil.which("wrk") is None:
        print("  wrk: installing Debian's package (apt-get install -y wrk)")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False)
    for name in PEER_PACKAGES:
        error = PEER_VENVS[name].setup(DATA / f"{name}-setup.log")
        if error:
            print(f"  {name}: SETUP FAILED: {error}")
            (DATA / f"{name}-setup-error.txt").write_text(error + "\n")
            continue
        (DATA / f"{name}-setup-error.txt").unlink(missing_ok=True)
        if name == "mlflow":
            folder = DATA / "mlflow-model"
            (DATA / "mlflow-home").mkdir(exist_ok=True)
            if not (folder / "MLmodel").exists() or (
                folder.stat().st_mtime < model.path.stat().st_mtime
            ):
                subprocess.run(
                    [str(PEER_VENVS["mlflow"].python), str(PEERS / "mlflow_save.py"), str(model.path),
                     str(folder)],
                    check=True, env={**os.environ, **QUIET_ENV}, cwd=DATA / "mlflow-home",
                )  # fmt: skip
            print(f"  mlflow: model folder {folder}")
