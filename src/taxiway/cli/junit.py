"""JUnit XML for CI systems: one test suite per source, one test case per rule."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # nosec B405
from pathlib import Path

from taxiway.data.check import CheckReport

__all__ = ["write_junit"]


def write_junit(report: CheckReport, path: Path) -> None:
    """Write ``report`` as JUnit XML: failures for `block` findings, skipped-free."""
    suites = ET.Element("testsuites", name="taxiway check")
    for source in report.sources:
        suite = ET.SubElement(
            suites, "testsuite", name=f"source.{source.name}", time=f"{source.duration_s:.3f}"
        )
        cases = 0
        listed = {r.rule for r in source.validation.results} if source.validation else set()
        if source.validation:
            for result in source.validation.results:
                cases += 1
                case = ET.SubElement(suite, "testcase", classname=source.name, name=result.rule)
                if not result.passed:
                    tag = "failure" if result.policy == "block" else "system-out"
                    node = ET.SubElement(case, tag)
                    text = (
                        f"{result.policy}: {result.failing} failing; pass when {result.threshold}"
                    )
                    if tag == "failure":
                        node.set("message", text)
                    node.text = text
        for finding in source.findings:
            if finding.rule in listed:
                continue
            cases += 1
            case = ET.SubElement(suite, "testcase", classname=source.name, name=finding.rule)
            if finding.blocks:
                node = ET.SubElement(case, "failure", message=finding.message)
                node.text = f"{finding.message}\nfix: {finding.fix or '-'}"
            else:
                ET.SubElement(case, "system-out").text = f"{finding.severity}: {finding.message}"
        if cases == 0:
            cases = 1
            ET.SubElement(suite, "testcase", classname=source.name, name="read")
        suite.set("tests", str(cases))
        suite.set("failures", str(sum(1 for c in suite.iter("failure"))))
    tree = ET.ElementTree(suites)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
