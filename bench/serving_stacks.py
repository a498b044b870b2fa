"""The server-stack study that chose taxiway's server: a minimal Starlette endpoint
(``serving_peers/stack_app.py``) on each stack of uvicorn and granian (``--targets stacks``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from serving_model import HOST, PEERS, Model
from serving_targets import Target, features_body


# The server stacks for the minimal endpoint: name -> (description, argv for (port, workers)).
# uvicorn's CLI default loop/http is "auto" (uvloop and httptools when installed), so both
# are named explicitly: taxiway depends on plain `uvicorn`, which brings neither.
def _uvicorn(loop: str, http: str) -> Callable[[int, int], list[str]]:
    return lambda port, workers: [
        sys.executable, "-m", "uvicorn", "stack_app:app", "--host", HOST, "--port", str(port),
        "--workers", str(workers), "--loop", loop, "--http", http, "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip


def _uvicorn_nodelay(loop: str, http: str) -> Callable[[int, int], list[str]]:
    return lambda port, workers: [
        sys.executable, str(PEERS / "uvicorn_nodelay.py"), "stack_app:app", "--host", HOST,
        "--port", str(port), "--workers", str(workers), "--loop", loop, "--http", http,
    ]  # fmt: skip


def _uvicorn_reuseport(loop: str, http: str) -> Callable[[int, int], list[str]]:
    return lambda port, workers: [
        sys.executable, str(PEERS / "uvicorn_reuseport.py"), "stack_app:app", "--host", HOST,
        "--port", str(port), "--workers", str(workers), "--loop", loop, "--http", http,
    ]  # fmt: skip


def _granian(*flags: str) -> Callable[[int, int], list[str]]:
    return lambda port, workers: [
        sys.executable, "-m", "granian", "--interface", "asgi", "--http", "1", "--no-ws",
        "--log-level", "warning", "--no-access-log", "--host", HOST, "--port", str(port),
        "--workers", str(workers), *flags, "stack_app:app",
    ]  # fmt: skip


STACKS: dict[str, tuple[str, Callable[[int, int], list[str]]]] = {
    "uvicorn": ("uvicorn --loop asyncio --http h11", _uvicorn("asyncio", "h11")),
    "uvicorn-uvloop": ("uvicorn --loop uvloop --http httptools", _uvicorn("uvloop", "httptools")),
    "uvicorn-nodelay": (
        "uvicorn asyncio/h11, socket bound with IPPROTO_TCP + TCP_NODELAY",
        _uvicorn_nodelay("asyncio", "h11"),
    ),
    "uvicorn-uvloop-nodelay": (
        "uvicorn uvloop/httptools, socket bound with IPPROTO_TCP + TCP_NODELAY",
        _uvicorn_nodelay("uvloop", "httptools"),
    ),
    "uvicorn-reuseport": (
        "uvicorn asyncio/h11, one SO_REUSEPORT socket per worker (IPPROTO_TCP + TCP_NODELAY)",
        _uvicorn_reuseport("asyncio", "h11"),
    ),
    "uvicorn-uvloop-reuseport": (
        "uvicorn uvloop/httptools, one SO_REUSEPORT socket per worker (IPPROTO_TCP + TCP_NODELAY)",
        _uvicorn_reuseport("uvloop", "httptools"),
    ),
    "granian": ("granian --interface asgi --http 1 --no-ws --loop uvloop", _granian("--loop", "uvloop")),
    "granian-asyncio": (
        "granian --interface asgi --http 1 --no-ws --loop asyncio",
        _granian("--loop", "asyncio"),
    ),
}  # fmt: skip


def stack_targets(model: Model, names: list[str], workers: list[int]) -> list[Target]:
    bodies = [features_body(row) for row in model.rows]
    env = {"BENCH_MODEL": str(model.path), "PYTHONPATH": str(PEERS)}
    targets = []
    for name in names:
        description, argv = STACKS[name]
        for n in workers:
            targets.append(
                Target(
                    name=f"stack:{name}",
                    server=description,
                    workers=n,
                    argv=lambda port, argv=argv, n=n: argv(port, n),  # type: ignore[misc]
                    path="/predict",
                    bodies=bodies,
                    answer=lambda body: float(body["score"]),
                    expected=model.expected,
                    ready_path="/ready",
                    env=env,
                    start_timeout=60,
                )
            )
    return targets
