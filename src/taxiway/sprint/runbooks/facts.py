"""What the runbook pages draw on: the spec's values, the service's series names, Markdown
blocks, and the scripts kept as package data under ``scripts/``.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taxiway.serving.fallback import parse_chain
from taxiway.serving.metrics import Metrics
from taxiway.spec.durations import format_duration
from taxiway.spec.models import Serving
from taxiway.spec.project import Project

PLANNED_COMMANDS: tuple[str, ...] = ()
"""Commands the runbooks name as the future replacement of a manual step; none today."""
_ROLLOUT = "taxiway rollout"
_MONITOR = "taxiway monitor"

SERVICE_URL = "http://127.0.0.1:8080"
"""Where ``taxiway serve`` listens unless given ``--host``/``--port``."""


@dataclass(frozen=True)
class _Facts:
    """The spec's values the pages quote, resolved once."""

    project: Project
    serving: Serving
    log_folder: Path
    metric: dict[str, str]

    @classmethod
    def of(cls, project: Project) -> _Facts:
        serving = project.spec.serving or Serving()
        log = Path(serving.log.path) if serving.log.path else project.state_dir / "predictions"
        return cls(project, serving, log, _series())

    @property
    def name(self) -> str:
        return self.project.spec.name

    @property
    def spec_args(self) -> str:
        """``-f SPEC`` (and ``--state-dir`` when it is not the default), shell-quoted."""
        args = f"-f {shlex.quote(str(self.project.spec_path))}"
        if self.project.state_dir != self.project.spec_path.parent / ".taxiway":
            args += f" --state-dir {shlex.quote(str(self.project.state_dir))}"
        return args

    def cmd(self, *words: str) -> str:
        """A taxiway command line for this project (``words`` are already shell-safe)."""
        return " ".join(["taxiway", *words, self.spec_args])

    def setting(self, key: str) -> str:
        """A table row quoting ``key`` from the spec (or its default), e.g. the budget."""
        value, declared = _lookup(self.project, key)
        return f"| `{key}` | `{_show(value)}` | {'spec' if declared else 'default'} |"

    def thresholds(self, *keys: str) -> str:
        rows = "\n".join(self.setting(key) for key in keys)
        return "| setting | value | from |\n|---|---|---|\n" + rows

    def series(self, attribute: str, suffix: str = "", labels: str = "") -> str:
        """The series name ``/metrics`` exposes for ``Metrics.<attribute>``."""
        return f"{self.metric[attribute]}{suffix}{'{' + labels + '}' if labels else ''}"

    @property
    def owner(self) -> str:
        owner = self.project.spec.owner
        if owner:
            return f"Owner: **{owner}** (`owner` in the spec) is accountable; escalate there."
        return (
            "Owner: **none**: the spec names nobody accountable for this model. Add one:\n\n"
            "```yaml\nowner: <team>\n```"
        )

    def header(self, title: str) -> str:
        path = self.project.spec_path
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else "-"
        return (
            f"# {title}: `{self.name}`\n\n"
            f"From the spec `{self.project.spec_path}` (sha256 {digest}). "
            f"{self.owner}\n\n"
            "Placeholders in `<angle brackets>` are yours to fill in; the service is assumed at "
            f"{SERVICE_URL} (use the `--host` and `--port` the service was started with). "
            "See [the index](README.md).\n"
        )

    def log_query(self, where: str, select: str, *, group: bool = True) -> str:
        """A runnable Python block: a DuckDB query over the prediction log."""
        tail = "GROUP BY ALL ORDER BY answers DESC" if group else "ORDER BY ts DESC LIMIT 20"
        script = _script("log_query.tmpl").format(
            log=str(self.log_folder), select=select, where=where, tail=tail
        )
        return f"```python\n{script}```"


@cache
def _series() -> dict[str, str]:
    """``Metrics`` attribute → the series name in ``/metrics`` (counters end in ``_total``)."""
    names = {}
    for attribute, collector in vars(Metrics()).items():
        describe = getattr(collector, "describe", None)
        if describe is None:
            continue
        family = next(iter(describe()))
        names[attribute] = family.name + ("_total" if family.type == "counter" else "")
    return names


def _lookup(project: Project, key: str) -> tuple[Any, bool]:
    """The value of a dotted spec key and whether the spec declares it (else: the default)."""
    node: Any = project.spec
    declared = True
    for part in key.split("."):
        if isinstance(node, dict):
            node = node[part]
            continue
        assert isinstance(node, BaseModel)  # nosec B101
        declared = declared and part in node.model_fields_set
        node = getattr(node, part)
        if node is None and part == "serving":
            node = Serving()
    return node, declared


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return "none" if value is None else str(value)


def _sh(*lines: str) -> str:
    return "```sh\n" + "\n".join(lines) + "\n```"


def _yaml(text: str) -> str:
    return "```yaml\n" + text + "\n```"


def _fallback_chain(facts: _Facts) -> str:
    steps = [step.label for step in parse_chain(facts.serving.fallback)]
    chain = " → ".join([*steps, "the training prior"])
    if facts.serving.fallback is None:
        return (
            f"No `serving.fallback` is declared, so a degraded answer is {chain}. "
            "A chain tried in order is better:\n\n"
            + _yaml("serving:\n  fallback: [previous, baseline]")
        )
    return f"The fallback chain (`serving.fallback`): {chain}."


@cache
def _script(name: str) -> str:
    """The text of ``scripts/<name>`` (package data), a ``str.format`` template."""
    return files("taxiway.sprint.runbooks").joinpath("scripts", name).read_text("utf-8")
