"""What a result file holds, as code: a :class:`Schema` is a name, a version and typed
:class:`Field` s (nested for lists of records), and it both checks a document and
writes its own documentation, so the docs cannot drift from the writers."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any

from meprop_bench.errors import MePropInputError

NUMBER = (Real,)
OBJECT = (dict,)
LIST = (list,)
TEXT = (str,)
INT = (int,)
NONE = (type(None),)
_TYPE_NAMES = {Real: "number", dict: "object", list: "list", str: "string", int: "integer",
               bool: "boolean", type(None): "null"}  # fmt: skip


@dataclass(frozen=True)
class Field:
    """One field: its name, the types its value may have, what it means, the version
    that added it, and for a list of records, the fields of each record."""

    name: str
    types: tuple[type, ...]
    doc: str
    since: int = 1
    items: tuple[Field, ...] = ()
    optional: bool = False  # may be absent (benchmark extra_info written by some suites)

    def type_name(self) -> str:
        names = [_TYPE_NAMES.get(t, t.__name__) for t in self.types]
        if self.items:
            names = ["list of records"] + [n for n in names if n != "list"]
        return " or ".join(names)


@dataclass(frozen=True)
class Schema:
    """A result kind: ``name`` and ``version`` are written into every file of it;
    readers accept ``oldest`` .. ``version``."""

    name: str
    version: int
    title: str
    doc: str
    fields: tuple[Field, ...]
    oldest: int = 1
    envelope: bool = True  # carries :data:`ENVELOPE` (the machine, argv, ...)

    def all_fields(self) -> tuple[Field, ...]:
        return (*ENVELOPE, *self.fields) if self.envelope else self.fields

    def check(self, doc: Any, where: str = "file") -> int:
        """Raise MePropInputError naming the first field of ``doc`` that breaks this
        schema (at the document's own version); return that version."""
        if not isinstance(doc, dict):
            raise MePropInputError(f"{where} must be an object, got {type(doc).__name__}")
        name, version = doc.get("schema"), doc.get("schema_version")
        if name != self.name or not (
            isinstance(version, int) and self.oldest <= version <= self.version
        ):
            raise MePropInputError(
                f"{where} is not a {self.name} v{self.oldest}..v{self.version} file "
                f"(schema {name!r} v{version!r})"
            )
        check_fields(doc, self.all_fields(), version, where)
        return version

    def check_record(self, record: Any, where: str) -> None:
        """Check one record of an envelope-less kind (a benchmark's extra_info)."""
        check_fields(record, self.fields, self.version, where)

    def markdown(self) -> str:
        """This schema's section of docs/schemas.md."""
        reads = f" (reads v{self.oldest}..v{self.version})" if self.oldest < self.version else ""
        lines = [f"## {self.title}: `{self.name}` v{self.version}{reads}", "", self.doc, ""]
        if self.envelope:
            lines += ["The envelope (`schema`, `schema_version`, `created`, ...), then:", ""]
        lines += _field_table(self.fields)
        return "\n".join(lines)


def check_fields(record: Any, fields: tuple[Field, ...], version: int, where: str) -> None:
    """Every field of ``fields`` present in ``record`` (as of ``version``) with a value
    of its types; records of nested lists checked in turn."""
    if not isinstance(record, dict):
        raise MePropInputError(f"{where} must be an object, got {type(record).__name__}")
    for spec in fields:
        if spec.since > version:
            continue
        if spec.name not in record:
            if spec.optional:
                continue
            raise MePropInputError(f"{where} lacks the field {spec.name!r}")
        value = record[spec.name]
        if (isinstance(value, bool) and bool not in spec.types) or not isinstance(
            value, spec.types
        ):
            raise MePropInputError(f"{where}.{spec.name} has the wrong type: {value!r:.60}")
        if spec.items and isinstance(value, list):
            for i, item in enumerate(value):
                check_fields(item, spec.items, version, f"{where}.{spec.name}[{i}]")


def _field_table(fields: tuple[Field, ...], prefix: str = "") -> list[str]:
    rows = ["| field | type | since | meaning |", "|---|---|---|---|"] if not prefix else []
    for spec in fields:
        optional = " (optional)" if spec.optional else ""
        rows.append(
            f"| `{prefix}{spec.name}` | {spec.type_name()}{optional} | v{spec.since} | {spec.doc} |"
        )
        rows += _field_table(spec.items, f"{prefix}{spec.name}[].")
    return rows


ENVELOPE = (
    Field("schema", TEXT, "the result kind, e.g. `meprop-bench/training`"),
    Field("schema_version", INT, "its version; readers accept the versions they know"),
    Field("created", TEXT, "when it was written (UTC, ISO 8601)"),
    Field("meprop_bench_version", TEXT, "the package version that wrote it"),
    Field("argv", LIST, "the command line that made it"),
    Field("machine", OBJECT, "the machine and thread settings it ran with "
          "(`meprop_bench.results.machine.machine_info`)"),
)  # fmt: skip
