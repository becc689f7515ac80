"""Labels: by id, a project's (by name), an issue's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loaders._keyset import Order, PageSpec
from loaders.projects import VISIBLE
from loaders.rows import LABEL_COLUMNS, LabelRow

SELECT_LABELS_BY_ID = f"""
SELECT {LABEL_COLUMNS}
FROM labels l JOIN projects p ON p.id = l.project_id
WHERE l.id = ANY($1::bigint[]) AND {VISIBLE}
"""

BY_NAME = Order("NAME", "l.name", "name")


def label_row(values: Sequence[Any]) -> LabelRow:
    return LabelRow(*values)


LABELS_BY_PROJECT = PageSpec(
    source="labels l",
    parent_column="l.project_id",
    id_column="l.id",
    columns=LABEL_COLUMNS,
    make_row=label_row,
)

# Ordered by label id: the primary key (issue_id, label_id) is the index.
LABELS_BY_ISSUE = PageSpec(
    source="issue_labels il JOIN labels l ON l.id = il.label_id",
    parent_column="il.issue_id",
    id_column="il.label_id",
    columns=LABEL_COLUMNS,
    make_row=label_row,
)
