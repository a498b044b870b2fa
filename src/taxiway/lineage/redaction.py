"""Secrets out of lineage: every URL password and ``password=`` in a text, masked.

:func:`taxiway.spec.secrets.redact` masks the password of a text that *is* a URL; an error
message quotes URLs inside sentences, so this masks them wherever they stand.

>>> redact_text("could not reach redis://:hunter2@cache:6379/0 with password=x here")
'could not reach redis://:***@cache:6379/0 with password=*** here'
"""

from __future__ import annotations

import re

from taxiway.spec.secrets import redact

__all__ = ["redact_text"]

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it, and any ``password=...``, masked."""
    return redact(_URL_PASSWORD.sub(r"\g<head>:***@", text))
