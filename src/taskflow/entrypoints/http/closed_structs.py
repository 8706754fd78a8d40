"""Request bodies that refuse unknown fields say so in the OpenAPI document.

A ``msgspec.Struct`` declared with ``forbid_unknown_fields=True`` answers an unknown field with a
400, but Litestar describes every Struct as open; clients, and fuzzers such as Schemathesis,
then take any extra field for valid. This plugin adds ``additionalProperties: false`` to those.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin  # not public
from litestar.openapi.spec import Schema
from litestar.typing import FieldDefinition


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        if not super().is_plugin_supported_field(field_definition):
            return False
        info = msgspec.inspect.type_info(field_definition.type_)
        return isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema
