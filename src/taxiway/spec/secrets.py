"""Secrets in a spec: only ``${ENV_VAR}`` or ``${file:path}`` references, never literals.

The spec stores the reference; the value is read at connect time and never logged.

>>> import os
>>> os.environ["TW_DOC_URL"] = "postgresql://reader:s3cret@db/prod"
>>> secret = Secret("${TW_DOC_URL}")
>>> secret
Secret('${TW_DOC_URL}')
>>> secret.reveal().endswith("/prod")
True
>>> redact("postgresql://reader:s3cret@db/prod")
'postgresql://reader:***@db/prod'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from taxiway.errors import SourceError

__all__ = ["Secret", "find_literal_password", "redact", "references"]

_REF = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_PASSWORD = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@]*):(?P<pw>[^@]*)@"
)


def references(text: str) -> list[str]:
    """The ``${...}`` references in ``text``; raise ``ValueError`` on a malformed one."""
    found = _REF.findall(text)
    for ref in found:
        name = ref[len("file:") :] if ref.startswith("file:") else ref
        if ref.startswith("file:"):
            if not name:
                raise ValueError("`${file:}` names no file; write `${file:secrets/db_url}`")
        elif not _NAME.fullmatch(name):
            raise ValueError(f"`${{{ref}}}` is not an environment variable name")
    if text.count("${") != len(found):
        raise ValueError("an unclosed `${` reference; write `${ENV_VAR}`")
    return found


_PARAM_PASSWORD = re.compile(r"(?i)(?:^|[?&\s])password\s*=\s*(?P<pw>[^&\s]+)")


def find_literal_password(url: str) -> str | None:
    """The literal password in ``url`` (``user:pw@`` or a ``password=`` parameter), or ``None``.

    >>> find_literal_password("postgresql://u@h/db?password=x"), find_literal_password("${URL}")
    ('x', None)
    """
    for match in (_URL_PASSWORD.match(url), _PARAM_PASSWORD.search(url)):
        if match is None:
            continue
        password = match.group("pw")
        if password and not _REF.fullmatch(password):
            return password
    return None


def redact(text: str) -> str:
    """``text`` with any URL password replaced by ``***``, for messages and logs."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:***@", text)
    return re.sub(r"(?i)(password\s*=\s*)[^&\s]+", r"\1***", text)


class Secret:
    """A value that may hold ``${ENV}``/``${file:...}`` references; shown, it never leaks."""

    __slots__ = ("_base_dir", "template")

    def __init__(self, template: str, base_dir: Path | None = None) -> None:
        references(template)
        self.template = template
        self._base_dir = base_dir

    def __repr__(self) -> str:
        return f"Secret({redact(self.template)!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.template == self.template

    def __hash__(self) -> int:
        return hash(self.template)

    @property
    def names(self) -> list[str]:
        """The environment variables and files this secret reads."""
        return references(self.template)

    def reveal(self) -> str:
        """Resolve every reference; raise :class:`SourceError` naming what is missing."""

        def substitute(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref.startswith("file:"):
                path = Path(ref[len("file:") :]).expanduser()
                if not path.is_absolute() and self._base_dir is not None:
                    path = self._base_dir / path
                try:
                    return path.read_text(encoding="utf-8").strip()
                except OSError as error:
                    raise SourceError(
                        f"secret file {path} cannot be read ({error.strerror})",
                        fix=f"create {path} holding the value, readable only by this user",
                    ) from None
            value = os.environ.get(ref)
            if value is None:
                raise SourceError(
                    f"environment variable {ref} is not set",
                    fix=f"export {ref}=... before running taxiway",
                )
            return value

        return _REF.sub(substitute, self.template)
