"""DuckDB SQL to Spark SQL through SQLGlot: the one place a second dialect is written.

The point-in-time plan writes every query once, in DuckDB's dialect. ``to_spark`` parses it
and writes Spark SQL; SQLGlot already maps casts (``::``), intervals, ``QUALIFY`` (to a
filtered subquery), ``SEMI``/``ANTI`` joins, ``EXCLUDE``, list literals and the null order of
``ORDER BY`` (DuckDB puts nulls last, Spark first: it writes ``NULLS LAST`` out). Two rewrites
are added here, each exact:

- a distinct window count, which Spark refuses, is the size of the window's set of values
  (``count(DISTINCT v) OVER w`` -> ``size(collect_set(v) OVER w)`` as a BIGINT; both skip
  nulls);
- ``WITH x AS MATERIALIZED`` loses the hint (Spark has no such keyword; results are equal);
- ``regexp_full_match(x, 'p')`` (a contract's number-as-text check) is ``x RLIKE '^(?:p)\\z'``
  (``\\z``: the end of the text, where Java's ``$`` also matches before a final newline);
  in ``regexp_matches(x, 'p')`` (``RLIKE``) each ``$`` of ``p`` outside a character class
  becomes ``\\z`` for the same reason, unless ``p`` sets flags (``(?m)``...).
- ``isfinite(x)``, which Spark lacks, is ``abs(x) < CAST('Infinity' AS DOUBLE)`` (false for
  NaN, which Spark orders above every number; null for null).

What has no Spark form is refused with the construct's name, so a plan that forgot a portable
form fails loudly instead of running wrong: an ``ASOF`` join, ``UNION ... BY NAME``,
``range()`` (SQLGlot 30 writes ``range(0, 10, 3)``, which ends before 10, as
``sequence(0, 7, 3)``, which ends at 7: the 9 is lost) and the DuckDB-only functions in
``DUCKDB_ONLY``.

>>> to_spark("SELECT NULL::BIGINT AS x, count(DISTINCT v) OVER (PARTITION BY k) AS n FROM t")
'SELECT CAST(NULL AS BIGINT) AS x, CAST(SIZE(COLLECT_SET(v) OVER (PARTITION BY k)) AS BIGINT) AS n FROM t'
>>> print(to_spark("SELECT regexp_full_match(v, '[0-9]+'), isfinite(x) FROM t"))
SELECT v RLIKE '^(?:[0-9]+)\\\\z', ABS(x) < CAST('Infinity' AS DOUBLE) FROM t
>>> to_spark("SELECT * FROM s ASOF JOIN e ON s.k = e.k AND s.t >= e.t")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
TranspileError: this query has an ASOF join, which Spark SQL lacks
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from taxiway.errors import TaxiwayError

__all__ = [
    "DUCKDB_ONLY",
    "TranspileError",
    "duckdb_type",
    "spark_type",
    "strict_end",
    "to_spark",
]

DUCKDB_ONLY = frozenset({"create_sort_key", "epoch_us", "arg_max", "arg_min", "list_distinct"})
"""DuckDB functions that SQLGlot passes through to Spark, where they do not exist (or take
other arguments): found by running the transpiled plan on Spark."""

_FIX = "the plan must use its portable form on Spark (a bug in taxiway: please report it)"


class TranspileError(TaxiwayError):
    """A query uses a DuckDB construct that has no Spark SQL form."""


def to_spark(sql: str) -> str:
    """``sql`` (DuckDB dialect) as Spark SQL; :class:`TranspileError` when it cannot be."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    _refuse_unportable(tree)
    tree = tree.transform(_rewrite)
    return tree.sql(dialect="spark")


def spark_type(duckdb_type: str) -> str:
    """A DuckDB type name as Spark spells it.

    >>> spark_type("VARCHAR"), spark_type("TIMESTAMP"), spark_type("DECIMAL(18,3)")
    ('STRING', 'TIMESTAMP_NTZ', 'DECIMAL(18, 3)')
    """
    return exp.DataType.build(duckdb_type, dialect="duckdb").sql(dialect="spark")


def duckdb_type(spark_type_name: str) -> str:
    """A Spark type name as DuckDB spells it (the plan's dialect).

    >>> duckdb_type("bigint"), duckdb_type("string"), duckdb_type("timestamp_ntz")
    ('BIGINT', 'TEXT', 'TIMESTAMP')
    """
    return exp.DataType.build(spark_type_name, dialect="spark").sql(dialect="duckdb")


def _refuse_unportable(tree: exp.Expr) -> None:
    for join in tree.find_all(exp.Join):
        if str(join.args.get("method") or "").upper() == "ASOF":
            raise TranspileError("this query has an ASOF join, which Spark SQL lacks", fix=_FIX)
    for union in tree.find_all(exp.Union):
        if union.args.get("by_name"):
            raise TranspileError(
                "this query has UNION ... BY NAME, which Spark SQL lacks", fix=_FIX
            )
    if any(True for _ in tree.find_all(exp.GenerateSeries)):
        # SQLGlot writes range(0, 10, 3) as sequence(0, 7, 3): 9 is lost, silently
        raise TranspileError(
            "this query calls range() or generate_series(), which SQLGlot 30 maps to "
            "Spark's sequence() with a wrong end",
            fix=_FIX,
        )
    for call in tree.find_all(exp.Func):
        name = call.name.lower() if isinstance(call, exp.Anonymous) else call.sql_name().lower()
        if name in DUCKDB_ONLY:
            raise TranspileError(
                f"this query calls {name}(), a DuckDB function Spark SQL lacks", fix=_FIX
            )


def _rewrite(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.RegexpFullMatch):
        pattern = node.expression
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise TranspileError("regexp_full_match() needs a literal pattern on Spark", fix=_FIX)
        anchored = exp.Literal.string(f"^(?:{pattern.this})\\z")
        return exp.RegexpLike(this=node.this, expression=anchored)
    if isinstance(node, exp.RegexpLike) and isinstance(node.expression, exp.Literal):
        pattern = node.expression.this
        if "(?" not in pattern.replace("(?:", ""):  # flags could make `$` an end of line
            node.set("expression", exp.Literal.string(strict_end(pattern)))
        return node
    if isinstance(node, exp.Anonymous) and node.name.lower() == "isfinite":
        infinity = exp.cast(exp.Literal.string("Infinity"), exp.DataType.Type.DOUBLE)
        return exp.LT(this=exp.Abs(this=node.expressions[0]), expression=infinity)
    if isinstance(node, exp.CTE) and node.args.get("materialized"):
        node.set("materialized", None)
        return node
    if (
        isinstance(node, exp.Window)
        and isinstance(node.this, exp.Count)
        and isinstance(node.this.this, exp.Distinct)
    ):
        values = node.this.this.expressions
        window = node.copy()
        window.set("this", exp.ArrayUniqueAgg(this=values[0]))
        return exp.cast(exp.ArraySize(this=window), exp.DataType.Type.BIGINT)
    return node


def strict_end(pattern: str) -> str:
    """``pattern`` with each ``$`` outside a character class as ``\\z``: the end of the text,
    as RE2's (DuckDB's) ``$`` is, where Java's (Spark's) also matches before a final newline.

    >>> print(strict_end(r"^[a-z$]+\\$x$"))
    ^[a-z$]+\\$x\\z
    """
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            # a `]` first in the class (after `[` or `[^`) is a literal
            opened = pattern[index - 1] == "[" or pattern[index - 2 : index] == "[^"
            in_class = not (char == "]" and not opened)
        elif char == "[":
            in_class = True
        elif char == "$":
            char = "\\z"
        out.append(char)
        index += 1
    return "".join(out)
