"""The worker builds uvicorn's HTTP protocol itself, from uvicorn's internal API: these tests
fail, naming what moved, when the installed uvicorn no longer matches what it was tested with."""

from __future__ import annotations

import inspect
from typing import Any

import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from taxiway.serving.worker import protocol_arguments, uvicorn_config

# uvicorn 0.55's HttpToolsProtocol.__init__; a new uvicorn may differ: re-test the supervised
# workers (tests/serving/test_resilience.py), then update this and the pin in pyproject.toml
TESTED_PROTOCOL_PARAMETERS = ["self", "config", "server_state", "app_state", "_loop"]


def protocol_class() -> Any:
    config = uvicorn_config()
    assert isinstance(config.http, str), config.http
    return import_from_string(HTTP_PROTOCOLS[config.http])


def test_the_protocol_class_takes_what_the_worker_passes() -> None:
    cls = protocol_class()
    arguments = protocol_arguments(object(), object(), {}, None)
    try:
        inspect.signature(cls).bind(**arguments)
    except TypeError as error:
        raise AssertionError(
            f"uvicorn {uvicorn.__version__}'s {cls.__qualname__} no longer takes "
            f"{sorted(arguments)}: {error}; serving/worker.py's protocol_arguments must follow"
        ) from None


def test_the_protocol_class_signature_is_the_one_tested() -> None:
    cls = protocol_class()
    parameters = list(inspect.signature(cls.__init__).parameters)
    assert parameters == TESTED_PROTOCOL_PARAMETERS, (
        f"uvicorn {uvicorn.__version__} changed {cls.__qualname__}.__init__ to {parameters}"
    )


def test_the_server_startup_still_takes_sockets() -> None:
    assert "sockets" in inspect.signature(uvicorn.Server.startup).parameters
    assert hasattr(uvicorn.Server(uvicorn_config()), "server_state")
