"""Labels: by id, a project's (by name), an issue's."""

from __future__ import annotations

from loaders._keyset import Order, PageSpec
from loaders.projects import VISIBLE
from loaders.rows import LABELS, LabelRow

SELECT_LABELS_BY_ID = f"""
SELECT {{columns}}
FROM labels l JOIN projects p ON p.id = l.project_id{{joins}}
WHERE l.id = ANY($1::bigint[]) AND {VISIBLE}
"""

BY_NAME = Order("NAME", "l.name", "name")


LABELS_BY_PROJECT: PageSpec[LabelRow] = PageSpec(
    source="labels l",
    parent_column="l.project_id",
    id_column="l.id",
    table=LABELS,
)

# Ordered by label id: the primary key (issue_id, label_id) is the index.
LABELS_BY_ISSUE: PageSpec[LabelRow] = PageSpec(
    source="issue_labels il JOIN labels l ON l.id = il.label_id",
    parent_column="il.issue_id",
    id_column="il.label_id",
    table=LABELS,
)
