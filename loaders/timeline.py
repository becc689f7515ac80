"""An issue's timeline: its comments and what happened to it, read from the event log.

Each event shows as none, one or several items (an update that renames and reassigns
shows a rename, an unassignment and an assignment; a labelling shows one item per label),
expanded in SQL so that a page of many issues' timelines is one statement. An item's
place is (event id, its rank in the event): events of a project are numbered in commit
order (loaders/writes/issues.py), so this is the order things happened.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, cast

from loaders._keyset import Order, PageSpec, Params, Scope
from loaders.rows import COMMENTS, CommentRow, TimelineEntry, TimelineEventRow


class ClosedEventRow(TimelineEventRow):
    __slots__ = ()


class ReopenedEventRow(TimelineEventRow):
    __slots__ = ()


class RenamedTitleEventRow(TimelineEventRow):
    __slots__ = ()


class LabeledEventRow(TimelineEventRow):
    __slots__ = ()


class UnlabeledEventRow(TimelineEventRow):
    __slots__ = ()


class AssignedEventRow(TimelineEventRow):
    __slots__ = ()


class UnassignedEventRow(TimelineEventRow):
    __slots__ = ()


class TransferredEventRow(TimelineEventRow):
    __slots__ = ()


class MentionedEventRow(TimelineEventRow):
    __slots__ = ()


COMMENT_ITEM = "ISSUE_COMMENT"
EVENT_ROWS: dict[str, type[TimelineEventRow]] = {
    "CLOSED_EVENT": ClosedEventRow,
    "REOPENED_EVENT": ReopenedEventRow,
    "RENAMED_TITLE_EVENT": RenamedTitleEventRow,
    "LABELED_EVENT": LabeledEventRow,
    "UNLABELED_EVENT": UnlabeledEventRow,
    "ASSIGNED_EVENT": AssignedEventRow,
    "UNASSIGNED_EVENT": UnassignedEventRow,
    "TRANSFERRED_EVENT": TransferredEventRow,
    "MENTIONED_EVENT": MentionedEventRow,
}
ITEM_TYPES = (COMMENT_ITEM, *EVENT_ROWS)

# The items of each event: (place, item type, the row it names).
TIMELINE_SOURCE = """events e
CROSS JOIN LATERAL (
    SELECT 1 AS place,
           CASE e.kind WHEN 'COMMENTED' THEN 'ISSUE_COMMENT' WHEN 'CLOSED' THEN 'CLOSED_EVENT'
                       WHEN 'REOPENED' THEN 'REOPENED_EVENT' WHEN 'MENTIONED' THEN 'MENTIONED_EVENT'
                       ELSE 'TRANSFERRED_EVENT' END AS item,
           CASE e.kind WHEN 'MENTIONED' THEN (e.payload->>'user_id')::bigint
                       WHEN 'issue_transferred' THEN (e.payload->>'from_project_id')::bigint
                       END AS ref
    WHERE e.kind IN ('COMMENTED', 'CLOSED', 'REOPENED', 'MENTIONED', 'issue_transferred')
    UNION ALL
    SELECT 1, 'RENAMED_TITLE_EVENT', NULL
    WHERE e.kind = 'UPDATED' AND e.payload ? 'previous_title'
    UNION ALL
    SELECT 2, 'UNASSIGNED_EVENT', (e.payload->>'previous_assignee_id')::bigint
    WHERE e.kind = 'UPDATED' AND e.payload->>'previous_assignee_id' IS NOT NULL
    UNION ALL
    SELECT 3, 'ASSIGNED_EVENT', (e.payload->>'assignee_id')::bigint
    WHERE e.kind IN ('OPENED', 'UPDATED') AND e.payload->>'assignee_id' IS NOT NULL
    UNION ALL
    SELECT 3 + l.n, CASE e.kind WHEN 'UNLABELED' THEN 'UNLABELED_EVENT' ELSE 'LABELED_EVENT' END,
           l.id
    FROM unnest(e.label_ids) WITH ORDINALITY AS l(id, n)
    WHERE e.kind IN ('OPENED', 'LABELED', 'UNLABELED')
) AS t
LEFT JOIN comments c ON c.id = e.comment_id AND e.kind = 'COMMENTED'"""
EVENT_COLUMNS = (
    ", e.id, t.place, t.item, t.ref, e.actor_id, e.created_at,"
    " e.payload->>'previous_title', e.payload->>'title', e.comment_id, e.issue_id"
)
OLDEST_FIRST = Order("TIMELINE", "e.id", "event_id")
_COMMENT_WIDTH = len(CommentRow._fields)


def _item(values: Sequence[Any]) -> TimelineEntry:
    event_id, place, item, ref, actor_id, created_at, previous, current, comment_id, issue_id = (
        values[_COMMENT_WIDTH:]
    )
    if item == COMMENT_ITEM:
        node: Any = COMMENTS.make(values[:_COMMENT_WIDTH])
    else:
        node = EVENT_ROWS[item](
            event_id, issue_id, actor_id, created_at, ref, previous, current, comment_id
        )
    return TimelineEntry(place, event_id, node)


def _conditions(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    found = ["(t.item <> 'ISSUE_COMMENT' OR c.id IS NOT NULL)"]
    if filters is not None:
        types = cast(tuple[str, ...], filters)  # (resolvers/timeline.py, `item_types`)
        found.append(f"t.item = ANY({params.add(list(types), 'text[]')})")
    return found


TIMELINE_BY_ISSUE: PageSpec[TimelineEntry] = PageSpec(
    source=TIMELINE_SOURCE,
    parent_column="e.issue_id",
    id_column="t.place",
    table=COMMENTS,
    conditions=_conditions,
    extra=EVENT_COLUMNS,
    make_row=_item,
    seek=True,  # a page after a cursor starts at its event in the index (issue_id, id)
)
