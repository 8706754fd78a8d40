"""Request bodies described as strictly as msgspec decodes them.

Litestar describes each ``msgspec.Struct`` of a request body, with two gaps that Schemathesis
found, fixed here for the Structs that refuse unknown fields (every request body of the API):

- ``forbid_unknown_fields=True`` answers an unknown field with a 400, but Litestar describes
  every Struct as open; these get ``additionalProperties: false``.
- A bound of zero (``ge=0``, ``gt=0``, ...) is dropped, Litestar taking 0 for "unset"; so
  ``priority`` or ``delay_seconds`` showed no minimum. Such bounds are put back.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin  # not public
from litestar.openapi.spec import Schema
from litestar.typing import FieldDefinition

_BOUNDS: Final = (
    ("ge", "minimum"),
    ("gt", "exclusive_minimum"),
    ("le", "maximum"),
    ("lt", "exclusive_maximum"),
)
_NUMBERS: Final = (msgspec.inspect.IntType, msgspec.inspect.FloatType)


def _number(
    kind: msgspec.inspect.Type,
) -> msgspec.inspect.IntType | msgspec.inspect.FloatType | None:
    """The constrained number type of a field, through ``| None`` and ``Annotated``."""
    if isinstance(kind, msgspec.inspect.UnionType):
        numbers = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
        kind = numbers[0] if len(numbers) == 1 else kind
    if isinstance(kind, msgspec.inspect.Metadata):
        kind = kind.type
    return kind if isinstance(kind, _NUMBERS) else None


def _restore_zero_bounds(schema: Schema, info: msgspec.inspect.StructType) -> None:
    for field in info.fields:
        number = _number(field.type)
        described = (schema.properties or {}).get(field.encode_name)
        if number is None or not isinstance(described, Schema):
            continue
        for bound, keyword in _BOUNDS:
            if getattr(number, bound) == 0 and getattr(described, keyword) is None:
                setattr(described, keyword, 0)


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        if not super().is_plugin_supported_field(field_definition):
            return False
        info = msgspec.inspect.type_info(field_definition.type_)
        return isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        assert isinstance(info, msgspec.inspect.StructType)  # is_plugin_supported_field
        schema.additional_properties = False
        _restore_zero_bounds(schema, info)
        return schema
