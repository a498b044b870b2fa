"""Line-aware YAML: parse once, keep every node's position, turn pydantic errors into issues.

Shared by the spec loader and the contract loader, so both report ``file:line:column``, the
field path, what was expected and a "did you mean" suggestion.

>>> doc = parse_yaml("name: demo\\nsources:\\n  orders: {kind: file}\\n", "taxiway.yaml")
>>> doc.position(("sources", "orders", "kind"))
(3, 12)
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from taxiway.errors import SpecError, SpecIssue
from taxiway.spec.models import TaxiwaySpec

__all__ = ["YamlDocument", "did_you_mean", "issues_from_validation", "parse_yaml"]

Loc = tuple[str | int, ...]


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A suggestion for a mistyped ``word`` among ``choices``, or ``None``.

    >>> did_you_mean("timestmp", ["timestamp", "table"])
    'did you mean `timestamp`?'
    """
    options = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in options}
        if str(word).lower() in lowered:
            close = [lowered[str(word).lower()]]
    return f"did you mean `{close[0]}`?" if close else None


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: plain Python ``data`` plus the ruamel tree that knows positions."""

    file: str
    data: Any
    root: Any

    def position(self, loc: Sequence[str | int]) -> tuple[int | None, int | None]:
        """1-based (line, column) of the deepest node of ``loc`` found in the file.

        Elements of ``loc`` that are not in the file (pydantic's union tags) are skipped.
        """
        node = self.root
        line: int | None = 1 if self.root is not None else None
        column: int | None = 1 if self.root is not None else None
        for element in loc:
            if isinstance(node, CommentedMap) and element in node:
                key_line, key_col = node.lc.key(element)
                line, column = key_line + 1, key_col + 1
                node = node[element]
            elif isinstance(node, CommentedSeq) and isinstance(element, int):
                if 0 <= element < len(node):
                    item_line, item_col = node.lc.item(element)
                    line, column = item_line + 1, item_col + 1
                    node = node[element]
                else:
                    break
            # anything else is a union tag or a key that is not in the file: skip it
        return line, column

    def issue(
        self,
        loc: Sequence[str | int],
        message: str,
        *,
        expected: str | None = None,
        suggestion: str | None = None,
    ) -> SpecIssue:
        """A :class:`SpecIssue` located at ``loc``."""
        line, column = self.position(loc)
        return SpecIssue(
            file=self.file,
            line=line,
            column=column,
            path=_dotted(loc),
            message=message,
            expected=expected,
            suggestion=suggestion,
        )


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse ``text``; raise :class:`SpecError` with the position of any syntax error."""
    yaml = YAML(typ="rt", pure=True)
    try:
        root = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        raise SpecError(
            SpecIssue(
                file,
                line,
                column,
                "",
                f"not valid YAML: {problem}",
                suggestion="check indentation and quoting near this line",
            )
        ) from None
    except YAMLError as error:
        raise SpecError(SpecIssue(file, None, None, "", f"not valid YAML: {error}")) from None
    except (ValueError, TypeError, RecursionError) as error:
        # ruamel raises plain exceptions for some malformed scalars (e.g. bad dates)
        raise SpecError(SpecIssue(file, None, None, "", f"not valid YAML: {error}")) from None
    document = YamlDocument(file=file, data=None, root=root)
    issues: list[SpecIssue] = []
    data = _plain(root, (), document, issues)
    if issues:
        raise SpecError(issues)
    return YamlDocument(file=file, data=data, root=root)


def _plain(node: Any, loc: Loc, doc: YamlDocument, issues: list[SpecIssue]) -> Any:
    """Convert ruamel's round-trip types to plain Python, refusing tags and non-text keys."""
    if isinstance(node, TaggedScalar) or (
        hasattr(node, "tag")
        and getattr(node.tag, "value", None)
        and not isinstance(node, str)
        and not isinstance(node, CommentedMap | CommentedSeq)
    ):
        issues.append(doc.issue(loc, "YAML tags such as `!tag` are not supported"))
        return None
    if isinstance(node, CommentedMap | dict):
        if isinstance(node, CommentedMap) and node.tag.value is not None:
            issues.append(doc.issue(loc, f"YAML tag `{node.tag.value}` is not supported"))
        result: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(key, bool) or not isinstance(key, str | int | float):
                issues.append(doc.issue(loc, f"key {key!r} is not text; quote it"))
                continue
            result[str(key)] = _plain(value, (*loc, str(key)), doc, issues)
        return result
    if isinstance(node, CommentedSeq | list):
        if isinstance(node, CommentedSeq) and node.tag.value is not None:
            issues.append(doc.issue(loc, f"YAML tag `{node.tag.value}` is not supported"))
        return [_plain(item, (*loc, i), doc, issues) for i, item in enumerate(node)]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime):
        return datetime(
            node.year,
            node.month,
            node.day,
            node.hour,
            node.minute,
            node.second,
            node.microsecond,
            tzinfo=node.tzinfo,
        )
    if isinstance(node, date):
        return date(node.year, node.month, node.day)
    issues.append(doc.issue(loc, f"unsupported YAML value {node!r}"))
    return None


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for element in loc:
        if isinstance(element, int):
            out += f"[{element}]"
        else:
            out += ("." if out else "") + str(element)
    return out


def issues_from_validation(
    error: ValidationError, doc: YamlDocument, model: type[BaseModel]
) -> list[SpecIssue]:
    """Turn each pydantic error into a located, human :class:`SpecIssue`."""
    issues: list[SpecIssue] = []
    for item in error.errors(include_url=False):
        loc: Loc = tuple(item["loc"])
        kind = item["type"]
        file_loc = _strip_tags(loc, doc.data)
        expected: str | None = None
        suggestion: str | None = None
        message = str(item["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1], doc.data)
            message = f"unknown key `{loc[-1]}`"
            if allowed:
                expected = "one of " + ", ".join(sorted(allowed))
                suggestion = did_you_mean(str(loc[-1]), allowed)
        elif kind == "missing":
            message = f"missing required key `{loc[-1]}`"
        elif kind in ("literal_error", "enum"):
            ctx = item.get("ctx") or {}
            expected = str(ctx.get("expected", ""))
            options = [o.strip(" '\"") for o in expected.replace(" or ", ",").split(",")]
            suggestion = did_you_mean(str(item.get("input")), options)
            message = f"{item.get('input')!r} is not allowed"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            ctx = item.get("ctx") or {}
            symbol = {
                "greater_than": ">",
                "greater_than_equal": ">=",
                "less_than": "<",
                "less_than_equal": "<=",
            }[kind]
            bound = next(iter(ctx.values()), "")
            message = f"must be {symbol} {bound}, got {item.get('input')!r}"
        elif kind == "union_tag_invalid":
            ctx = item.get("ctx") or {}
            expected = str(ctx.get("expected_tags", ""))
            options = [o.strip(" '\"") for o in expected.split(",")]
            message = f"unknown {ctx.get('discriminator', 'kind')} {ctx.get('tag')!r}".replace(
                "'kind'", "kind"
            )
            suggestion = did_you_mean(str(ctx.get("tag")), options)
            file_loc = (*file_loc, "kind")
        elif kind == "union_tag_not_found":
            message = "missing required key `kind`"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            message = f"expected a mapping (key: value), got {_describe(item.get('input'))}"
        elif kind == "list_type":
            message = f"expected a list, got {_describe(item.get('input'))}"
        elif kind in ("string_type",):
            message = f"expected text, got {_describe(item.get('input'))}"
        issues.append(doc.issue(file_loc, message, expected=expected, suggestion=suggestion))
    return sorted(_unique(issues), key=lambda i: (i.line or 0, i.column or 0))


def _unique(issues: list[SpecIssue]) -> list[SpecIssue]:
    seen: set[tuple[str, str]] = set()
    out = []
    for issue in issues:
        key = (issue.path, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


def _tagged_union_tags(schema: Any) -> set[str]:
    """The tags of every tagged union in a pydantic core ``schema`` (nested dicts and lists)."""
    tags: set[str] = set()
    if isinstance(schema, dict):
        if schema.get("type") == "tagged-union":
            tags.update(tag for tag in schema["choices"] if isinstance(tag, str))
        for value in schema.values():
            tags |= _tagged_union_tags(value)
    elif isinstance(schema, list):
        for value in schema:
            tags |= _tagged_union_tags(value)
    return tags


UNION_TAGS = frozenset(_tagged_union_tags(TaxiwaySpec.__pydantic_core_schema__))
"""The tags pydantic puts into an error's location for the spec's tagged unions (source,
view, spine, label, online store and registry kinds): they are not keys of the file."""


def _member_keys(schema: Any, refs: dict[str, Any]) -> set[str]:
    """The field names of the model behind a union member's core ``schema``."""
    while isinstance(schema, dict):
        if schema.get("type") == "definition-ref":
            schema = refs[schema["schema_ref"]]
        elif schema.get("type") == "model":
            return set(schema["cls"].model_fields)
        else:
            schema = schema.get("schema")
    return set()


def _identifying_keys(schema: Any) -> set[str]:
    """The keys whose presence alone picks a member of a union told apart by its keys.

    Those unions (a view's ``aggregate``/``latest``/``static``, a spine's ``every``) have a
    function for a discriminator: a key identifies a member when a mapping holding only that
    key is sent elsewhere than an empty mapping is.
    """
    refs: dict[str, Any] = {}
    unions: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("ref"), str):
                refs[node["ref"]] = node
            if node.get("type") == "tagged-union" and callable(node["discriminator"]):
                unions.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    keys: set[str] = set()
    for union in unions:
        choose = union["discriminator"]
        fields = set().union(*(_member_keys(c, refs) for c in union["choices"].values()))
        default = choose({})
        keys |= {
            k
            for k in fields
            if choose({k: None}) in union["choices"] and choose({k: None}) != default
        }
    return keys


IDENTIFYING_KEYS = frozenset(_identifying_keys(TaxiwaySpec.__pydantic_core_schema__))
"""The keys that tell apart the members of the spec's unions without a ``kind`` (views, spines):
a node holding one of them is read as the member that has it."""


def _strip_tags(loc: Loc, data: Any) -> Loc:
    """Drop the union tags pydantic inserts into ``loc``; keep every real key and index.

    A tag can share its name with a real key (a view's ``aggregate:``), so an element is a tag
    when the element after it is not found under it but is found beside it.
    """
    out: list[str | int] = []
    node = data
    for index, element in enumerate(loc):
        following = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(element, str) and element in UNION_TAGS and following is not None:
            below = node.get(element) if isinstance(node, dict) else None
            if not (isinstance(below, dict) and following in below) and not (
                isinstance(below, list) and isinstance(following, int)
            ):
                continue
        node = _child(node, element)
        out.append(element)
    return tuple(out)


def _allowed_keys(model: type[BaseModel], loc: Loc, data: Any) -> set[str]:
    """The keys the model accepts at ``loc`` (for "did you mean")."""
    current: Any = model
    node = data
    for element in loc:
        current = _unwrap(current, element, node)
        if current is None:
            return set()
        node = _child(node, element, node)
    current = _unwrap(current, None, node)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return {field.alias or name for name, field in current.model_fields.items()}
    return set()


def _child(node: Any, element: str | int, default: Any = None) -> Any:
    """``node[element]`` for a mapping key or a list index that exists, else ``default``."""
    if isinstance(node, dict) and element in node:
        return node[element]
    if isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node):
        return node[element]
    return default


def _unwrap(annotation: Any, element: str | int | None, node: Any) -> Any:
    """Step one ``loc`` element into ``annotation`` (model field, dict value, list item, union)."""
    annotation = _strip_annotated(annotation)
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [_strip_annotated(a) for a in get_args(annotation) if a is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if element is not None:
            for candidate in models:
                tag = _literal_kind(candidate)
                if tag == element or candidate.__name__.lower().startswith(str(element)):
                    return candidate
        for candidate in models:
            if isinstance(node, dict) and _literal_kind(candidate) == node.get("kind"):
                return candidate if element is None else _unwrap(candidate, element, node)
        if isinstance(node, dict):
            for candidate in models:
                fields = set(candidate.model_fields)
                if node.keys() & fields & IDENTIFYING_KEYS:
                    return candidate if element is None else _unwrap(candidate, element, node)
        if len(members) >= 1 and element is None:
            return models[0] if models else None
        for member in members:
            found = _unwrap(member, element, node)
            if found is not None:
                return found
        return None
    if element is None:
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if str(element) in (name, field.alias):
                return field.annotation
        return None
    if origin is dict:
        return get_args(annotation)[1]
    if origin is list:
        return get_args(annotation)[0]
    return None


def _strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _literal_kind(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    if field is None:
        return None
    args = get_args(field.annotation)
    return str(args[0]) if len(args) == 1 else None
