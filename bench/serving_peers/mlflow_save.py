"""Save bench/serving.py's LightGBM model as an MLflow model folder (run in the MLflow venv).

    python mlflow_save.py MODEL.txt OUT_FOLDER

The folder is what ``mlflow.lightgbm.log_model`` would store: the lightgbm flavour plus
python_function, with a signature of 20 double columns ``f0``..``f19`` (inferred from a frame,
as users do with ``input_example``), so MLflow's server checks each request against it.
"""

from __future__ import annotations

import shutil
import sys

import lightgbm
import mlflow.lightgbm
import numpy as np
import pandas as pd
from mlflow.models import infer_signature


def main(model_file: str, out: str) -> int:
    booster = lightgbm.Booster(model_file=model_file)
    columns = [f"f{i}" for i in range(booster.num_feature())]
    sample = pd.DataFrame(np.zeros((2, len(columns))), columns=columns)
    signature = infer_signature(sample, booster.predict(sample.to_numpy()))
    shutil.rmtree(out, ignore_errors=True)
    mlflow.lightgbm.save_model(
        booster,
        out,
        signature=signature,
        # listed, so MLflow does not import-trace the model to infer them
        pip_requirements=[f"lightgbm=={lightgbm.__version__}"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
