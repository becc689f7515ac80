"""`make`: factories that insert rows on the test's connection, with keyword overrides."""

from __future__ import annotations

import itertools
from typing import Any

import asyncpg

_seq = itertools.count(1)


class Make:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self.conn = connection

    async def _insert(self, table: str, values: dict[str, Any]) -> int:
        columns = ", ".join(values)
        params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        sql = f"INSERT INTO {table} ({columns}) VALUES ({params}) RETURNING id"
        return int(await self.conn.fetchval(sql, *values.values()))

    async def user(self, **overrides: Any) -> int:
        n = next(_seq)
        values = {
            "login": f"t-user-{n}",
            "name": f"Test User {n}",
            "email": f"t-user-{n}@example.test",
            "password_hash": "!",
        } | overrides
        return await self._insert("users", values)

    async def organization(self, **overrides: Any) -> int:
        n = next(_seq)
        return await self._insert(
            "organizations", {"slug": f"t-org-{n}", "name": f"Org {n}"} | overrides
        )

    async def member(self, organization_id: int, user_id: int, role: str = "MEMBER") -> None:
        await self.conn.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)",
            organization_id,
            user_id,
            role,
        )

    async def project(self, organization_id: int, **overrides: Any) -> int:
        n = next(_seq)
        values = {
            "organization_id": organization_id,
            "key": f"T{n}",
            "name": f"Project {n}",
            "visibility": "PUBLIC",
        } | overrides
        return await self._insert("projects", values)

    async def issue(self, project_id: int, author_id: int, **overrides: Any) -> int:
        number = overrides.pop("number", None) or await self.conn.fetchval(
            "SELECT coalesce(max(number), 0) + 1 FROM issues WHERE project_id = $1", project_id
        )
        values = {
            "project_id": project_id,
            "author_id": author_id,
            "number": number,
            "title": f"Issue {number}",
        } | overrides
        return await self._insert("issues", values)

    async def comment(self, issue_id: int, author_id: int, **overrides: Any) -> int:
        return await self._insert(
            "comments",
            {"issue_id": issue_id, "author_id": author_id, "body": "a comment"} | overrides,
        )

    async def label(self, project_id: int, **overrides: Any) -> int:
        n = next(_seq)
        return await self._insert(
            "labels",
            {"project_id": project_id, "name": f"label-{n}", "color": "#112233"} | overrides,
        )

    async def tree(self, width: int, user_id: int, *, visibility: str = "PUBLIC") -> str:
        """An organization with `width` projects, each with `width` issues, labels and
        comments per issue (labels all attached), in a few set-based statements. Issues are
        by `user_id`, comments by another user. Returns the organization's slug."""
        commenter = await self.user()
        slug = f"t-tree-{next(_seq)}"
        org = await self.organization(slug=slug)
        await self.conn.execute(
            """
            INSERT INTO projects (organization_id, key, name, visibility)
            SELECT $1, 'K' || g, 'Project ' || g, $3 FROM generate_series(1, $2) g;
            """,
            org,
            width,
            visibility,
        )
        await self.conn.execute(
            """
            INSERT INTO issues (project_id, number, title, author_id, assignee_id, created_at)
            SELECT p.id, g, 'Issue ' || g, $2, $2, now() - make_interval(mins => g)
            FROM projects p, generate_series(1, $3) g WHERE p.organization_id = $1
            """,
            org,
            user_id,
            width,
        )
        await self.conn.execute(
            """
            INSERT INTO labels (project_id, name, color)
            SELECT p.id, 'label-' || g, '#00ff00'
            FROM projects p, generate_series(1, $2) g WHERE p.organization_id = $1
            """,
            org,
            width,
        )
        await self.conn.execute(
            """
            INSERT INTO issue_labels (issue_id, label_id)
            SELECT i.id, l.id FROM issues i JOIN projects p ON p.id = i.project_id
            JOIN labels l ON l.project_id = p.id WHERE p.organization_id = $1
            """,
            org,
        )
        await self.conn.execute(
            """
            INSERT INTO comments (issue_id, author_id, body)
            SELECT i.id, $2, 'comment ' || g
            FROM issues i JOIN projects p ON p.id = i.project_id, generate_series(1, $3) g
            WHERE p.organization_id = $1
            """,
            org,
            commenter,
            width,
        )
        return slug
