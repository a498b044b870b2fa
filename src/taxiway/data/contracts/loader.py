"""Load an ODCS contract file, with the same located errors as the spec."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from taxiway.data.contracts.model import Contract
from taxiway.errors import SpecError, SpecIssue
from taxiway.spec.yaml import issues_from_validation, parse_yaml

__all__ = ["load_contract", "load_contract_text"]


def load_contract(path: str | Path) -> Contract:
    """Read and validate the contract at ``path``; raise :class:`SpecError` naming the line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            SpecIssue(str(file), None, None, "", "contract file not found"),
            fix="check the source's `contract:` path (relative to the spec file)",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(SpecIssue(str(file), None, None, "", f"cannot read: {error}")) from None
    return load_contract_text(text, str(file))


def load_contract_text(text: str, file: str = "contract.yaml") -> Contract:
    """Validate contract ``text``.

    >>> c = load_contract_text('''
    ... apiVersion: v3.1.0
    ... kind: DataContract
    ... schema:
    ...   - name: orders
    ...     properties: [{name: order_id, logicalType: integer, required: true}]
    ... ''')
    >>> c.table.properties[0].required
    True
    """
    document = parse_yaml(text, file)
    if not isinstance(document.data, dict):
        raise SpecError(
            SpecIssue(file, 1, 1, "", "a contract is a mapping with `apiVersion`, `schema`, ...")
        )
    try:
        return Contract.model_validate(document.data)
    except ValidationError as error:
        raise SpecError(issues_from_validation(error, document, Contract)) from None
