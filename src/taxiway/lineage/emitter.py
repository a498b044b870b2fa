"""The emitter: one run of a command as OpenLineage events, sent without ever failing it.

``with emitter.run("train", inputs=[...]) as run:`` sends START on entry; on a normal exit
COMPLETE with the inputs and outputs the block added to ``run``; on an exception FAIL with
its message (redacted), and the exception goes on. A ``failure`` function says which
exceptions end a run well (the CLI ends many commands with ``typer.Exit``, code 0 or not).

Nothing here may stop the command: an event that cannot be built or sent is reported once
through ``warn`` (with the fix) and dropped. With ``transport: http``, an event the endpoint
does not take is written to the file instead, so the state folder always holds every event.
Without a ``lineage:`` section, events go to the file; ``transport: off`` sends nothing. The
``openlineage`` package (the ``lineage`` extra) is imported on the first event: without it,
a spec with no ``lineage:`` section emits nothing, silently, and one that asks for lineage
gets a warning naming the extra.

>>> import json, tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> emitter = Emitter(None, state_dir=folder, use_case="churn")
>>> with emitter.run("check") as run:
...     pass
>>> path = folder / "lineage" / "events.jsonl"
>>> [json.loads(line)["eventType"] for line in path.read_text().splitlines()]
['START', 'COMPLETE']
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from taxiway.errors import TaxiwayError
from taxiway.lineage.datasets import Dataset
from taxiway.lineage.redaction import redact_text
from taxiway.lineage.transport import FileTransport, HttpTransport, Transport
from taxiway.spec.models import LineageSpec

__all__ = ["Emitter", "LineageRun", "lineage_folder"]

_log = logging.getLogger(__name__)


def lineage_folder(spec: LineageSpec | None, state_dir: Path) -> Path:
    """The folder the file transport writes to: ``lineage.path``, else ``<state dir>/lineage``."""
    if spec is not None and spec.path:
        return Path(spec.path)
    return state_dir / "lineage"


@dataclass
class LineageRun:
    """One run under way: what it read and wrote so far, and how it ended."""

    job: str
    run_id: str
    inputs: list[Dataset] = field(default_factory=list)
    outputs: list[Dataset] = field(default_factory=list)
    error: str | None = None
    """Set by the block to end the run as FAIL without raising (e.g. a check that blocks)."""
    skip: bool = False
    """Set by the block of a deferred run to send nothing (see :meth:`Emitter.run`)."""

    def read(self, datasets: Iterable[Dataset]) -> None:
        """Record ``datasets`` as inputs, replacing one of the same name (it gained facets)."""
        _merge(self.inputs, datasets)

    def wrote(self, datasets: Iterable[Dataset]) -> None:
        """Record ``datasets`` as outputs, replacing one of the same name."""
        _merge(self.outputs, datasets)


def _merge(into: list[Dataset], datasets: Iterable[Dataset]) -> None:
    for dataset in datasets:
        key = (dataset.namespace, dataset.name)
        into[:] = [d for d in into if (d.namespace, d.name) != key] + [dataset]


class Emitter:
    """Sends the run events of ``use_case``'s commands as its ``lineage:`` section says."""

    def __init__(
        self,
        spec: LineageSpec | None,
        *,
        state_dir: Path,
        use_case: str,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.use_case = use_case
        self.namespace = spec.namespace if spec is not None else "taxiway"
        self.enabled = spec is None or spec.transport != "off"
        self.file = FileTransport(lineage_folder(spec, state_dir))
        self._warn = warn or _log.warning
        self._warned: set[str] = set()
        self._http: Transport | None = None
        self._http_down = False
        self._events: ModuleType | None = None

    # ------------------------------------------------------------------ runs

    @contextmanager
    def run(
        self,
        command: str,
        *,
        inputs: Iterable[Dataset] = (),
        failure: Callable[[BaseException], str | None] | None = None,
        deferred: bool = False,
    ) -> Iterator[LineageRun]:
        """One run of ``command``: START now, COMPLETE or FAIL when the block ends.

        An exception ends the run as FAIL with ``failure(error)`` as its message (default:
        the error's type and message), unless ``failure`` returns None: then the exception
        ended it well (a command's ``typer.Exit(0)``). The exception goes on either way.
        ``deferred`` holds START (stamped with the time the run began) until the end, so a
        block that sets ``run.skip`` sends nothing: a rollout check that changed nothing.
        """
        events = self._module()
        run = LineageRun(
            f"{self.use_case}.{command}", events.new_run_id() if events else "", list(inputs)
        )
        began = datetime.now(UTC)
        if not deferred:
            self._send(run, "START")
        try:
            yield run
        except BaseException as error:
            if run.error is None:
                run.error = failure(error) if failure is not None else _describe(error)
            self._end(run, deferred, began)
            raise
        self._end(run, deferred, began)

    def _end(self, run: LineageRun, deferred: bool, began: datetime) -> None:
        if deferred:
            if run.skip and not run.error:
                return
            self._send(run, "START", at=began)
        self._send(run, "FAIL" if run.error else "COMPLETE")

    # ------------------------------------------------------------------ sending

    def _module(self) -> ModuleType | None:
        if not self.enabled:
            return None
        if self._events is None:
            try:
                events = importlib.import_module("taxiway.lineage.events")
            except ModuleNotFoundError as error:
                if self.spec is not None:
                    self._warn_once(
                        "extra",
                        f"lineage events not sent: taxiway[lineage] is not installed "
                        f"(no {error.name}); fix: pip install 'taxiway[lineage]'",
                    )
                self.enabled = False
                return None
            self._events = events
        return self._events

    def _send(self, run: LineageRun, state: str, at: datetime | None = None) -> None:
        events = self._module()
        if events is None:
            return
        try:
            event = events.run_event(
                state,
                run_id=run.run_id,
                namespace=self.namespace,
                job=run.job,
                inputs=run.inputs,
                outputs=run.outputs if state != "START" else [],
                error=run.error if state == "FAIL" else None,
                at=at,
            )
        except Exception as error:  # a bug in describing the run must not stop the command
            self._warn_once("build", f"lineage event not built: {type(error).__name__}: {error}")
            return
        if self._send_http(event):
            return
        try:
            self.file.send(event)
        except OSError as error:
            self._warn_once(
                "file",
                f"lineage event not written to {self.file.path}: {error.strerror or error}; "
                "fix: make the folder writable, or set lineage.path",
            )

    def _send_http(self, event: dict[str, Any]) -> bool:
        """Post ``event`` when the transport is http; False when it must go to the file."""
        spec = self.spec
        if spec is None or spec.transport != "http" or spec.url is None or self._http_down:
            return False
        try:
            if self._http is None:
                token = os.environ.get(spec.api_key_env) if spec.api_key_env else None
                self._http = HttpTransport(
                    spec.url.reveal(),
                    endpoint=spec.endpoint,
                    timeout_s=spec.timeout_s,
                    api_key=token,
                )
            self._http.send(event)
            return True
        except TaxiwayError as error:
            # one dead endpoint costs one timeout per command, not one per event
            self._http_down = True
            self._warn_once(
                "http",
                f"{redact_text(error.message)}; this command's events go to {self.file.path} "
                f"instead; fix: {error.fix or 'check lineage.url'}",
            )
            return False

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)


def _describe(error: BaseException) -> str:
    if isinstance(error, TaxiwayError):
        return f"{type(error).__name__}: {error.message}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
