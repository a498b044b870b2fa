"""Run the blocked example's sprint as `make demo-blocked` does, every failure in place.

1. ``leak.py``: the leaking table, ``data/account_status.parquet``, from the retail data
   (``../retail/data`` beside this spec, as in examples/);
2. ``setup_postgres.py``: unless ``BLOCKED_CRM_URL`` is set, the CRM table and the role
   ``ml_reader``, which may log in but not read it, on the PostgreSQL server at
   ``BLOCKED_ADMIN_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``, trust auth;
   a password comes only from that variable or ``PGPASSWORD`` and is never printed), then
   ``BLOCKED_CRM_URL`` points at it as ``ml_reader``: the debrief's data-access fix is
   ``GRANT SELECT ON crm.accounts TO ml_reader;``. With no server there it says so, first and
   last, and the blocker is the failed connection instead;
3. ``taxiway sprint -f SPEC --as-of 2025-12-31`` and any further options (``--report DIR``).

Exit 0 when deployed (never, here), 1 when not, 2 and above on an error.

    python examples/blocked/demo.py [-f SPEC] [--as-of T] [sprint options...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from leak import write_account_status
from setup_postgres import CRM_URL_ENV, prepare_crm

from taxiway.cli import main as taxiway

__all__ = ["run"]

HERE = Path(__file__).resolve().parent
AS_OF = "2025-12-31"  # the retail data ends on this day


def run(spec: Path, as_of: str, sprint_options: list[str]) -> int:
    """Prepare the example beside ``spec`` and run its sprint; return the sprint's exit code."""
    folder = spec.resolve().parent
    rows = write_account_status(folder.parent / "retail" / "data", folder / "data")
    print(f"account_status: {rows:,} rows, the CRM's current status (the leak)")
    url, note = prepare_crm(os.environ)
    os.environ[CRM_URL_ENV] = url
    print(note, flush=True)
    code = taxiway(["sprint", "-f", str(spec), "--as-of", as_of, *sprint_options])
    if "no PostgreSQL" in note:
        print(f"\nnote: {note}")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "-f", "--file", type=Path, default=HERE / "taxiway.yaml", help="the blocked spec"
    )
    parser.add_argument("--as-of", default=AS_OF, help=f"the sprint's time (default {AS_OF})")
    args, sprint_options = parser.parse_known_args(argv)
    return run(args.file, args.as_of, sprint_options)


if __name__ == "__main__":
    sys.exit(main())
