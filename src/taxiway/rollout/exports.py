"""`taxiway retrain export`: the retraining cadence for the schedulers teams already run.

Each export calls the same command, ``taxiway retrain -f <spec> --state-dir <state>
--trigger cadence``, on the spec's ``retrain.every``:

- :func:`cron_line`: a crontab line (the cadence as a cron schedule, :func:`cron_schedule`);
- :func:`k8s_cronjob`: a Kubernetes ``CronJob`` manifest (``batch/v1``), at most one run at a
  time (``concurrencyPolicy: Forbid``) and none restarted by Kubernetes on failure (a retrain
  that stopped at a gate exits non-zero on purpose);
- :func:`airflow_dag`: an Airflow DAG file, one ``BashOperator`` on ``schedule=`` the cadence,
  ``max_active_runs=1``, no catch-up.

A cron schedule cannot say every cadence: one that is not a divisor of an hour (in minutes),
of a day (in hours), one day or one week is refused, with the fix.

>>> from datetime import timedelta
>>> cron_schedule(timedelta(days=7)), cron_schedule(timedelta(hours=6))
('0 0 * * 0', '0 */6 * * *')
"""

from __future__ import annotations

import shlex
from datetime import timedelta
from io import StringIO

from ruamel.yaml import YAML

from taxiway.errors import SpecError
from taxiway.models.retrain import retrain_policy
from taxiway.spec.durations import format_duration
from taxiway.spec.project import Project

__all__ = ["airflow_dag", "cron_line", "cron_schedule", "k8s_cronjob", "retrain_command"]


def cron_schedule(every: timedelta) -> str:
    """The cron schedule of the cadence ``every`` (minute, hour, day of month, month, day of
    week; at minute 0, midnight UTC, Sunday).

    >>> cron_schedule(timedelta(minutes=15)), cron_schedule(timedelta(days=1))
    ('*/15 * * * *', '0 0 * * *')
    >>> cron_schedule(timedelta(days=3))
    Traceback (most recent call last):
    ...
    taxiway.errors.SpecError: retrain.every 3d has no cron schedule
      fix: use a divisor of 60 minutes (15m) or of 24 hours (6h), 1d or 7d, or run `taxiway run`, which takes any cadence
    """
    seconds = int(every.total_seconds())
    minutes, rest = divmod(seconds, 60)
    if rest == 0 and 0 < minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    hours, rest = divmod(seconds, 3600)
    if rest == 0 and 0 < hours < 24 and 24 % hours == 0:
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    if every == timedelta(days=1):
        return "0 0 * * *"
    if every == timedelta(days=7):
        return "0 0 * * 0"
    raise SpecError(
        f"retrain.every {format_duration(every)} has no cron schedule",
        fix="use a divisor of 60 minutes (15m) or of 24 hours (6h), 1d or 7d, or run "
        "`taxiway run`, which takes any cadence",
    )


def retrain_command(
    project: Project, *, spec: str | None = None, state: str | None = None
) -> list[str]:
    """The command every export runs: ``spec`` and ``state`` (default: the project's own
    paths) as the scheduler's machine sees them."""
    return [
        "taxiway",
        "retrain",
        "-f",
        spec or str(project.spec_path),
        "--state-dir",
        state or str(project.state_dir),
        "--trigger",
        "cadence",
    ]


def cron_line(project: Project) -> str:
    """A crontab line: the cadence, then the command (its output appended to a log in the
    state folder).

    >>> project = Project.load("examples/retail/taxiway.yaml", "/tmp/state")
    >>> cron_line(project)  # doctest: +ELLIPSIS
    '0 0 * * 0 taxiway retrain -f /.../taxiway.yaml --state-dir /tmp/state --trigger cadence >> /tmp/state/retrain.log 2>&1'
    """
    schedule = cron_schedule(retrain_policy(project).every)
    command = shlex.join(retrain_command(project))
    log = shlex.quote(str(project.state_dir / "retrain.log"))
    return f"{schedule} {command} >> {log} 2>&1"


def k8s_cronjob(
    project: Project,
    *,
    image: str,
    spec: str = "/spec/taxiway.yaml",
    state: str = "/state",
) -> str:
    """A Kubernetes ``CronJob`` manifest (YAML) running the retrain in ``image``, with the
    spec at ``spec`` and the state folder at ``state`` inside the container (mount them:
    the manifest names where, not how).

    >>> project = Project.load("examples/retail/taxiway.yaml", "/tmp/state")
    >>> manifest = YAML(typ="safe").load(k8s_cronjob(project, image="example/taxiway:1"))
    >>> manifest["kind"], manifest["spec"]["schedule"], manifest["spec"]["concurrencyPolicy"]
    ('CronJob', '0 0 * * 0', 'Forbid')
    """
    name = project.spec.name
    schedule = cron_schedule(retrain_policy(project).every)
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:40] or "model"
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": f"taxiway-retrain-{slug}",
            "labels": {"app.kubernetes.io/name": "taxiway", "taxiway/model": slug},
        },
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "retrain",
                                    "image": image,
                                    "command": retrain_command(project, spec=spec, state=state),
                                }
                            ],
                        }
                    },
                }
            },
        },
    }
    header = (
        f"# taxiway retrain of {name} every {format_duration(retrain_policy(project).every)}: "
        f"mount the spec at {spec} and the state folder at {state}\n"
    )
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = StringIO()
    out.write(header)
    yaml.dump(manifest, out)
    return out.getvalue()


_DAG = '''\
"""Airflow DAG: `taxiway retrain` of {name} every {every} (made by `taxiway retrain export`)."""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(
    dag_id={dag_id!r},
    description={description!r},
    schedule=timedelta(seconds={seconds}),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["taxiway", "retrain"],
) as dag:
    BashOperator(
        task_id="retrain",
        bash_command={command!r},
        retries=0,
    )
'''


def airflow_dag(project: Project) -> tuple[str, str]:
    """An Airflow DAG file's name and text: the retrain on the cadence (exit codes: a gate
    that stopped the run fails the task, as it should).

    >>> import ast
    >>> project = Project.load("examples/retail/taxiway.yaml", "/tmp/state")
    >>> name, text = airflow_dag(project)
    >>> name.startswith("taxiway_retrain_"), type(ast.parse(text)).__name__
    (True, 'Module')
    """
    name = project.spec.name
    every = retrain_policy(project).every
    dag_id = "taxiway_retrain_" + "".join(c if c.isalnum() else "_" for c in name.lower())
    text = _DAG.format(
        name=name,
        every=format_duration(every),
        dag_id=dag_id,
        description=f"taxiway retrain of {name} every {format_duration(every)}",
        seconds=int(every.total_seconds()),
        command=shlex.join(retrain_command(project)),
    )
    return f"{dag_id}.py", text
