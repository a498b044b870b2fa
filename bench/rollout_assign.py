"""What assignment costs in the served path (``bench/rollout.py --part assignment``).

The shop: the retail example built by ``bench/serving_peers/build_shop.py`` (data, spec,
``taxiway train``, version 1 promoted, the online store materialized) into
``bench/.data/rollout/shop/``, then trained a second time so version 2 is a candidate; built
once and reused.

The measurement, in one process: a rollout of version 2 against version 1 (unit
``customer``, one step at ``share``) and one ``Service`` whose arms are switched on
(``service.arms``: the rollout's path) or off (``None``: the path without a rollout) per
block of ``block`` answers (``contract.parse`` and ``Service.answer`` per request, CPU time
of this process, so others' load is left out). Blocks come in pairs, off/on then on/off in
turn; the A/A control pairs two blocks with the arms off, so its paired difference is the
noise floor; a third series pairs off with the arms on at a share of 0% (every unit assigned,
all to control: the same predictor as off), which is assignment's own cost in the path
without the candidate model's (the off/on series also pays the candidate's trees). Beside it, ``arm_for`` (the salt hashed afresh), ``Assigner.arm`` (the salt's
hash copied) and ``Arms.arm_of`` (unit read from the request, then the arm) per call.
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHOP = HERE / ".data" / "rollout" / "shop"
FIRST_CUSTOMER = 100_001  # examples/retail/simulate.py numbers customers from here


def build_shop(folder: Path, customers: int) -> Path:
    """The retail shop with versions 1 (production) and 2 (candidate); its spec's path."""
    spec = folder / "taxiway.yaml"
    if (folder / "candidate").exists():
        return spec
    loaded = importlib.util.spec_from_file_location(
        "build_shop", HERE / "serving_peers" / "build_shop.py"
    )
    assert loaded is not None
    assert loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    if module.main(["--out", str(folder), "--customers", str(customers)]) != 0:
        raise SystemExit("building the shop failed")
    from taxiway.cli import main as taxiway

    if taxiway(["train", "-f", str(spec), "--json"]) != 0:
        raise SystemExit("training the candidate failed")
    (folder / "candidate").write_text("")
    return spec


def _paired(off: list[float], on: list[float]) -> dict[str, float]:
    diffs = [b - a for a, b in zip(off, on, strict=True)]
    quartiles = statistics.quantiles(diffs, n=4)
    return {
        "off": statistics.median(off),
        "on": statistics.median(on),
        "diff": statistics.median(diffs),
        "q1": quartiles[0],
        "q3": quartiles[2],
    }


def per_call(call: Callable[[], Any], number: int) -> float:
    """µs per call, best of 5 runs of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def measure(spec: Path, *, share: float, pairs: int, block: int, customers: int) -> dict[str, Any]:
    """The paired blocks, the A/A control and the per-call costs (see the module)."""
    from taxiway.models.registry import open_registry
    from taxiway.rollout.assignment import Assigner, arm_for
    from taxiway.rollout.state import open_rollout_store
    from taxiway.serving.service import Service
    from taxiway.spec.project import Project

    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        registry.set_stage(project.spec.name, 1, "production", by="bench")
    finally:
        registry.close()
    store = open_rollout_store(project.spec.registry, project.state_dir)
    if (active := store.active(project.spec.name)) is not None:
        store.update(active, by="bench", kind="abort", state="aborted")
    started = store.start(
        name=project.spec.name,
        salt="bench",
        candidate=2,
        unit="customer",
        steps=[share],
        control={"kind": "version", "version": 1, "constant": None},
        plan={},
        by="bench",
    )
    try:
        service = Service(project, reload_interval_s=0)
        arms = service.arms
        if arms is None:
            raise SystemExit("the service loaded no arms for the rollout")
        contract = service.predictor.contract
        keys = min(customers, 400)
        items = [{"entities": {"customer": str(FIRST_CUSTOMER + i % keys)}} for i in range(block)]

        async def timed(with_arms: bool) -> float:
            service.arms = arms if with_arms else None
            began = time.process_time()
            for item in items:
                await service.answer(contract.parse(item), time.perf_counter())
            return (time.process_time() - began) / len(items) * 1e6

        async def blocks(second_on: bool) -> tuple[list[float], list[float]]:
            first, second = [], []
            for i in range(pairs):
                if i % 2:
                    b = await timed(second_on)
                    a = await timed(False)
                else:
                    a = await timed(False)
                    b = await timed(second_on)
                first.append(a)
                second.append(b)
            return first, second

        async def run() -> tuple[dict[str, float], dict[str, float], dict[str, float], int]:
            await timed(True)  # warm-up: both predictors, the online store's connections
            await timed(False)
            rollout = _paired(*await blocks(True))
            control = _paired(*await blocks(False))
            arms.follow(replace(started, share=0.0))  # every unit to control: assignment alone
            zero = _paired(*await blocks(True))
            arms.follow(started)
            parsed = [contract.parse(item) for item in items]
            candidates = sum(arms.arm_of(p) == "candidate" for p in parsed)
            await service.stop()
            return rollout, control, zero, candidates

        rollout, control, zero, candidates = asyncio.run(run())
        assigner = Assigner("bench")
        unit = str(FIRST_CUSTOMER + 17)
        parsed = contract.parse(items[17])

        def arm_of() -> Any:
            parsed.unit = None  # as a fresh request: the unit is read from its entity
            return arms.arm_of(parsed)

        calls = {
            "arm_for": per_call(lambda: arm_for("bench", unit, share), 100_000),
            "Assigner.arm": per_call(lambda: assigner.arm(unit, share), 100_000),
            "Arms.arm_of": per_call(arm_of, 100_000),
        }
    finally:
        if (active := store.active(project.spec.name)) is not None:
            store.update(active, by="bench", kind="abort", state="aborted")
        store.close()
    return {
        "share": share,
        "pairs": pairs,
        "block": block,
        "candidate_share_seen": candidates / len(items),
        "rollout": rollout,
        "aa": control,
        "share_zero": zero,
        "per_call_us": calls,
        "python": sys.version.split()[0],
    }
