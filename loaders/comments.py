"""Comments: by id, an issue's (oldest first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loaders._keyset import Order, PageSpec
from loaders.projects import VISIBLE
from loaders.rows import COMMENT_COLUMNS, CommentRow

SELECT_COMMENTS_BY_ID = f"""
SELECT {COMMENT_COLUMNS}
FROM comments c JOIN issues i ON i.id = c.issue_id JOIN projects p ON p.id = i.project_id
WHERE c.id = ANY($1::bigint[]) AND {VISIBLE}
"""

BY_CREATED_AT = Order("CREATED_AT", "c.created_at", "created_at")


def comment_row(values: Sequence[Any]) -> CommentRow:
    return CommentRow(*values)


COMMENTS_BY_ISSUE = PageSpec(
    source="comments c",
    parent_column="c.issue_id",
    id_column="c.id",
    columns=COMMENT_COLUMNS,
    make_row=comment_row,
)
