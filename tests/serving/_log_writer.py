"""A process that appends to a prediction log from many tasks and prints each acknowledged id.

Run by ``test_log.py``, which kills it with SIGKILL mid-run:
``python _log_writer.py FOLDER [always|interval|never]``.
An id is printed (and flushed) as soon as its ``append`` returns, and never before.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from taxiway.serving.log import PredictionLog

TASKS = 32


async def _appender(log: PredictionLog, task: int) -> None:
    i = 0
    while True:
        request_id = f"{task}-{i}"
        await log.append({"request_id": request_id, "features": {"x": i}, "pad": "p" * 200})
        sys.stdout.write(request_id + "\n")
        sys.stdout.flush()
        i += 1


async def _main(folder: Path) -> None:
    # small files, so the kill may also land during a rotation
    sync = sys.argv[2] if len(sys.argv) > 2 else "always"
    log = PredictionLog(folder, rotate_bytes=64 * 1024, sync=sync, sync_interval=0.05)  # type: ignore[arg-type]
    await asyncio.gather(*(_appender(log, task) for task in range(TASKS)))


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1])))
