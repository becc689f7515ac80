"""Reactions by subject (an issue or a comment): each content's count and whether the
viewer reacted, for a whole level of subjects in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

CONTENTS = ("THUMBS_UP", "THUMBS_DOWN", "LAUGH", "HOORAY", "CONFUSED", "HEART", "ROCKET", "EYES")

_GROUPS = """
SELECT g.{column}, $2::bigint, array_agg(g.content), array_agg(g.n), array_agg(g.mine)
FROM (
    SELECT {column}, content, count(*) AS n, bool_or(user_id = $2) AS mine
    FROM reactions WHERE {column} = ANY($1::bigint[])
    GROUP BY 1, 2
) AS g
GROUP BY 1
"""
SELECT_ISSUE_GROUPS = _GROUPS.format(column="issue_id")
SELECT_COMMENT_GROUPS = _GROUPS.format(column="comment_id")


class ReactionGroupsRow(NamedTuple):
    """A subject's reactions as (subject id, viewer id): by content, the count and whether
    the viewer is among them (contents nobody chose are absent)."""

    subject_id: int
    viewer_id: int
    counts: dict[str, tuple[int, bool]]


def groups_row(record: Any) -> ReactionGroupsRow:
    counts = {c: (n, mine) for c, n, mine in zip(record[2], record[3], record[4], strict=True)}
    return ReactionGroupsRow(record[0], record[1], counts)


def groups_key(row: ReactionGroupsRow) -> tuple[int, int]:
    return (row.subject_id, row.viewer_id)


def groups_arguments(keys: Sequence[tuple[int, int]]) -> tuple[list[int], int]:
    """Keys are (subject id, viewer id; 0 when anonymous): one viewer per request."""
    return [k[0] for k in keys], keys[0][1] if keys else 0
