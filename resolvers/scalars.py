"""Scalars whose text the API defines itself: `DateTime` is RFC 3339 in UTC with `Z`, the
same text the response encoder writes for the datetimes the compiled executor leaves."""

from __future__ import annotations

from datetime import datetime

from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

from core.encoding import rfc3339

DateTime = ScalarDefinition(
    name="DateTime",
    description=(
        "A moment, as RFC 3339 text in UTC: `2026-01-31T09:30:00Z` (with fractions of a "
        "second when it has them). Any offset is accepted as input."
    ),
    specified_by_url="https://www.rfc-editor.org/rfc/rfc3339",
    serialize=rfc3339,
    parse_value=DateTimeDefinition.parse_value,
    parse_literal=None,
    origin=datetime,
)

SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {datetime: DateTime}
