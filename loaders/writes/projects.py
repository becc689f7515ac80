"""Projects and labels."""

from __future__ import annotations

from typing import Any

from core.db import Session
from loaders.rows import LABEL_COLUMNS, PROJECT_COLUMNS, LabelRow, ProjectRow

INSERT_PROJECT = f"""
INSERT INTO projects AS p (organization_id, key, name, description, visibility)
VALUES ($1, $2, $3, $4, $5)
RETURNING {PROJECT_COLUMNS}
"""
UPDATE_PROJECT = f"""
UPDATE projects AS p SET name = coalesce($2, name), description = coalesce($3, description),
       visibility = coalesce($4, visibility)
WHERE id = $1 RETURNING {PROJECT_COLUMNS}
"""
ARCHIVE_PROJECT = f"""
UPDATE projects AS p SET archived_at = coalesce(archived_at, now())
WHERE id = $1 RETURNING {PROJECT_COLUMNS}
"""
INSERT_LABEL = f"""
INSERT INTO labels AS l (project_id, name, color) VALUES ($1, $2, $3) RETURNING {LABEL_COLUMNS}
"""
UPDATE_LABEL = f"""
UPDATE labels AS l SET name = coalesce($2, name), color = coalesce($3, color)
WHERE id = $1 RETURNING {LABEL_COLUMNS}
"""
DELETE_LABEL = "DELETE FROM labels WHERE id = $1"


async def create(
    session: Session, organization_id: int, key: str, name: str, description: str, visibility: str
) -> ProjectRow:
    row = await session.fetchrow(
        INSERT_PROJECT, organization_id, key, name, description, visibility
    )
    assert row is not None
    return ProjectRow(*row)


async def update(session: Session, project_id: int, **changes: Any) -> ProjectRow:
    row = await session.fetchrow(
        UPDATE_PROJECT,
        project_id,
        changes.get("name"),
        changes.get("description"),
        changes.get("visibility"),
    )
    assert row is not None
    return ProjectRow(*row)


async def archive(session: Session, project_id: int) -> ProjectRow:
    row = await session.fetchrow(ARCHIVE_PROJECT, project_id)
    assert row is not None
    return ProjectRow(*row)


async def create_label(session: Session, project_id: int, name: str, color: str) -> LabelRow:
    row = await session.fetchrow(INSERT_LABEL, project_id, name, color)
    assert row is not None
    return LabelRow(*row)


async def update_label(
    session: Session, label_id: int, name: str | None, color: str | None
) -> LabelRow:
    row = await session.fetchrow(UPDATE_LABEL, label_id, name, color)
    assert row is not None
    return LabelRow(*row)


async def delete_label(session: Session, label_id: int) -> None:
    await session.execute(DELETE_LABEL, label_id)
