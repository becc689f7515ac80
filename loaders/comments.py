"""Comments: by id, an issue's (oldest first)."""

from __future__ import annotations

from loaders._keyset import Order, PageSpec
from loaders.projects import VISIBLE
from loaders.rows import COMMENTS, CommentRow

SELECT_COMMENTS_BY_ID = f"""
SELECT {{columns}}
FROM comments c JOIN issues i ON i.id = c.issue_id JOIN projects p ON p.id = i.project_id{{joins}}
WHERE c.id = ANY($1::bigint[]) AND {VISIBLE}
"""

BY_CREATED_AT = Order("CREATED_AT", "c.created_at", "created_at")


COMMENTS_BY_ISSUE: PageSpec[CommentRow] = PageSpec(
    source="comments c",
    parent_column="c.issue_id",
    id_column="c.id",
    table=COMMENTS,
)
