"""The five rules as each tool states them (taxiway's contract, a pandera schema, a GX suite):
each tool validates the frame (or file) once and reports its failing rows per rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts_data import EMAIL_PATTERN, RULES, STATUSES

TOOLS = ("taxiway", "taxiway-parquet", "pandera", "gx")


PEERS = ("pandera", "gx")


TAXIWAY = ("taxiway", "taxiway-parquet")


CONTRACT = f"""
apiVersion: v3.1.0
kind: DataContract
id: bench-orders
schema:
  - name: orders
    properties:
      - {{name: order_id, required: true, unique: true}}
      - {{name: amount, logicalType: number, logicalTypeOptions: {{minimum: 0}}}}
      - {{name: status, logicalType: string, enum: [{", ".join(STATUSES)}]}}
      - name: email
        logicalType: string
        logicalTypeOptions: {{pattern: '{EMAIL_PATTERN}'}}
"""
# order_id has no logicalType: read into pandas it is float64 (NaN for null), and an integer
# type would add a sixth rule (whole numbers) that the peers do not run.


TAXIWAY_RULES = {
    "order_id.required": "not_null",
    "order_id.unique": "unique",
    "amount.minimum": "non_negative",
    "status.enum": "in_set",
    "email.pattern": "regex",
}


PANDERA_CHECKS = {
    ("order_id", "not_nullable"): "not_null",
    ("order_id", "unique"): "unique",
    ("amount", "greater_than_or_equal_to(0)"): "non_negative",
    ("status", f"isin({list(STATUSES)})"): "in_set",
    ("email", f"str_matches('{EMAIL_PATTERN}')"): "regex",
}


GX_TYPES = {
    "expect_column_values_to_not_be_null": "not_null",
    "expect_column_values_to_be_unique": "unique",
    "expect_column_values_to_be_between": "non_negative",
    "expect_column_values_to_be_in_set": "in_set",
    "expect_column_values_to_match_regex": "regex",
}


class Tool:
    """One validator: ``setup`` builds its schema or suite, ``run`` validates once."""

    needs_frame = True

    def setup(self, frame: Any, path: Path) -> None:
        raise NotImplementedError

    def run(self) -> dict[str, int]:
        """Failing rows per rule of :data:`RULES`."""
        raise NotImplementedError


class TaxiwayTool(Tool):
    def __init__(self, *, from_parquet: bool) -> None:
        from taxiway.data.contracts import load_contract_text, validate, validate_frame
        from taxiway.engines.duckdb import connect, quote_literal

        self.from_parquet = from_parquet
        self.needs_frame = not from_parquet
        self._load = load_contract_text
        self._validate = validate
        self._validate_frame = validate_frame
        self._connect = connect
        self._quote = quote_literal

    def setup(self, frame: Any, path: Path) -> None:
        self.frame = frame
        self.path = path
        self.contract = self._load(CONTRACT)

    def run(self) -> dict[str, int]:
        if self.from_parquet:
            con = self._connect()
            try:
                con.execute(
                    "CREATE VIEW orders AS SELECT * FROM "
                    f"read_parquet({self._quote(str(self.path))})"
                )
                report = self._validate(con, "orders", self.contract, source="orders")
            finally:
                con.close()
        else:
            report = self._validate_frame(self.frame, self.contract, source="orders")
        counts = {r.rule: r.failing for r in report.results}
        if set(counts) != set(TAXIWAY_RULES):
            raise RuntimeError(f"taxiway ran rules {sorted(counts)}, not {sorted(TAXIWAY_RULES)}")
        return {TAXIWAY_RULES[rule]: int(failing or 0) for rule, failing in counts.items()}


class PanderaTool(Tool):
    def __init__(self) -> None:
        import pandera.pandas as pandera

        self.pandera = pandera

    def setup(self, frame: Any, path: Path) -> None:
        pandera = self.pandera
        self.frame = frame
        # pandera's built-in `unique=True, report_duplicates="exclude_first"` finds the same
        # rows (nulls left out) but runs `is_unique` and then `duplicated`: about 1.5 s slower at
        # 10M rows. This one-pass check (nulls pass: ignore_na) is the fastest way to say it in
        # pandera, so the comparison does not flatter taxiway.
        self.schema = pandera.DataFrameSchema(
            {
                "order_id": pandera.Column(
                    nullable=False,
                    checks=pandera.Check(lambda s: ~s.duplicated(keep="first"), name="unique"),
                ),
                "amount": pandera.Column(checks=pandera.Check.ge(0)),
                "status": pandera.Column(checks=pandera.Check.isin(list(STATUSES))),
                "email": pandera.Column(checks=pandera.Check.str_matches(EMAIL_PATTERN)),
            }
        )

    def run(self) -> dict[str, int]:
        counts = dict.fromkeys(RULES, 0)
        try:
            self.schema.validate(self.frame, lazy=True)
        except self.pandera.errors.SchemaErrors as errors:
            cases = errors.failure_cases
            for (column, check), n in cases.groupby(["column", "check"]).size().items():
                key = PANDERA_CHECKS.get((column, check))
                if key is None:
                    raise RuntimeError(
                        f"pandera failed an unexpected check {column}/{check}"
                    ) from None
                counts[key] = int(n)
        return counts


class GxTool(Tool):
    def __init__(self) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe

        self.gx = gx
        self.gxe = gxe

    def setup(self, frame: Any, path: Path) -> None:
        gx, gxe = self.gx, self.gxe
        self.frame = frame
        context = gx.get_context(mode="ephemeral")
        asset = context.data_sources.add_pandas("bench").add_dataframe_asset("orders")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("all")
        self.suite = context.suites.add(gx.ExpectationSuite(name="orders"))
        for expectation in (
            gxe.ExpectColumnValuesToNotBeNull(column="order_id"),
            gxe.ExpectColumnValuesToBeUnique(column="order_id"),
            gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
            gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
            gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN),
        ):
            self.suite.add_expectation(expectation)

    def run(self) -> dict[str, int]:
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": self.frame})
        # BASIC: counts without the lists of unexpected values, the cheapest format
        result = batch.validate(self.suite, result_format="BASIC")
        counts = dict.fromkeys(RULES, 0)
        for item in result.results:
            counts[GX_TYPES[item.expectation_config.type]] = int(item.result["unexpected_count"])
        return counts


def make_tool(name: str) -> Tool:
    if name in TAXIWAY:
        return TaxiwayTool(from_parquet=name == "taxiway-parquet")
    if name == "pandera":
        return PanderaTool()
    if name == "gx":
        return GxTool()
    raise SystemExit(f"unknown tool {name!r}; choose from {', '.join(TOOLS)}")


def expected_counts(tool: str, truth: dict[str, int]) -> dict[str, int]:
    """What ``tool`` must report: GX counts every row of a duplicated group, not the surplus."""
    counts = {rule: truth[rule] for rule in RULES}
    if tool == "gx":
        counts["unique"] = truth["unique_members"]
    return counts
