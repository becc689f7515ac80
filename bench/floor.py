"""The json_agg floor of the dashboard query: what answering it costs with no GraphQL at all.

A bare Starlette app with one POST endpoint, /graphql (so that the load generator sends the
same request to it as to the API), that answers the `dashboard` query of bench/queries.py
with its exact response JSON, `{"data": ...}` (the API's `extensions` aside), built by
PostgreSQL in ONE hand-written statement of json_build_object, json_agg and LATERAL joins,
and passes PostgreSQL's JSON text through as the body, unparsed.

It follows the API's rules for an anonymous viewer: the first 4 organizations by id; in
each, the first 5 public projects by id (a private project is invisible); in each, the
first 10 issues by (created_at, id), with their author; for each, the first 5 comments by
(created_at, id), with their author. Each author is a scalar subquery, an index lookup
per row: a join lets the planner hash the whole users table for every project, a cost
that grows with the table. Timestamps are rendered by PostgreSQL in UTC
("2026-01-05T09:00:00+00:00", as Python's isoformat() renders the API's); the bench checks
that the `data` is equal, key order included, to the compiled server's before it measures.

JSON text from json_build_object has blanks (`{"key" : value}`), so its bytes are more
than the API's compact JSON for the same data. Served by uvicorn like the API (one worker),
on an asyncpg pool of the API's size; `Server-Timing` says 1 statement, as the API's does.

    uvicorn bench.floor:create_app --factory      (DATABASE_URL: the bench database)
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from core.settings import get_settings
from loaders.rendered import timestamp_sql

ORGANIZATIONS, PROJECTS, ISSUES, COMMENTS = 4, 5, 10, 5  # the dashboard's page sizes

# Timestamps as the API writes them (RFC 3339 in UTC with `Z`), not as json_build_object does
ISSUE_CREATED = timestamp_sql("i.created_at")
COMMENT_CREATED = timestamp_sql("c.created_at")

DASHBOARD_SQL = f"""
SELECT json_build_object('data', json_build_object('organizations', json_build_object(
  'nodes', coalesce(json_agg(json_build_object(
    'projects', json_build_object('nodes', pr.nodes)) ORDER BY o.id), '[]'))))::text
FROM (SELECT o.id FROM organizations o ORDER BY o.id LIMIT $1) AS o
CROSS JOIN LATERAL (
  SELECT coalesce(json_agg(json_build_object(
      'key', p.key,
      'name', p.name,
      'issues', json_build_object('nodes', iss.nodes)) ORDER BY p.id), '[]') AS nodes
  FROM (
    SELECT p.id, p.key, p.name FROM projects p
    WHERE p.organization_id = o.id AND p.visibility = 'PUBLIC'
    ORDER BY p.id LIMIT $2
  ) AS p
  CROSS JOIN LATERAL (
    SELECT coalesce(json_agg(json_build_object(
        'number', i.number,
        'title', i.title,
        'state', i.state,
        'priority', i.priority,
        'createdAt', {ISSUE_CREATED},
        'author', (SELECT json_build_object('login', u.login, 'name', u.name)
                   FROM users u WHERE u.id = i.author_id),
        'comments', json_build_object('nodes', cm.nodes)) ORDER BY i.created_at, i.id),
      '[]') AS nodes
    FROM (
      SELECT i.id, i.number, i.title, i.state, i.priority, i.created_at, i.author_id
      FROM issues i WHERE i.project_id = p.id
      ORDER BY i.created_at, i.id LIMIT $3
    ) AS i
    CROSS JOIN LATERAL (
      SELECT coalesce(json_agg(json_build_object(
          'body', c.body,
          'createdAt', {COMMENT_CREATED},
          'author', (SELECT json_build_object('login', u.login, 'name', u.name)
                     FROM users u WHERE u.id = c.author_id))
          ORDER BY c.created_at, c.id), '[]') AS nodes
      FROM (
        SELECT c.id, c.body, c.created_at, c.author_id FROM comments c
        WHERE c.issue_id = i.id
        ORDER BY c.created_at, c.id LIMIT $4
      ) AS c
    ) AS cm
  ) AS iss
) AS pr
"""


def _cursor(text: str) -> str:
    """SQL of the API's cursor of a JSON array's text: url-safe base64 without padding
    (`encode` breaks lines every 76 characters: the breaks are dropped). `replace` costs
    PostgreSQL a sixth of what `translate` does here."""
    encoded = f"encode(convert_to({text}, 'UTF8'), 'base64')"
    return f"rtrim(replace(replace(replace({encoded}, E'\\n', ''), '+', '-'), '/', '_'), '=')"


def _by_id(alias: str) -> str:
    return _cursor(f"""'[1,"ID",' || {alias}.id || ',' || {alias}.id || ']'""")


def _by_created_at(alias: str) -> str:
    return _cursor(
        f"""'[1,"CREATED_AT",' || to_json({alias}.created_at)::text || ',' || {alias}.id || ']'"""
    )


def _connection(alias: str, limit: str, node: str) -> str:
    """A first page's JSON, pageInfo and edges, of rows numbered `rn`, one more than
    `limit` (that row only tells that there is a next page). The aggregates take the
    rows in the order of their subquery (no sort of their own: the bench checks the
    order with the rest of the data)."""
    first = f"FILTER (WHERE {alias}.rn <= {limit})"
    cursors = f"(array_agg({alias}.cursor) {first})"
    return f"""json_build_object(
      'pageInfo', json_build_object(
        'hasNextPage', count(*) > {limit}, 'hasPreviousPage', false,
        'startCursor', {cursors}[1], 'endCursor', {cursors}[least(count(*), {limit})]),
      'edges', coalesce(
        json_agg(json_build_object('cursor', {alias}.cursor, 'node', {node})) {first}, '[]'))"""


def _author(alias: str) -> str:
    return f"""(SELECT json_build_object('login', u.login, 'name', u.name)
                FROM users u WHERE u.id = {alias}.author_id)"""


ISSUE_NODE = f"""json_build_object(
    'number', i.number, 'title', i.title, 'state', i.state, 'priority', i.priority,
    'createdAt', {ISSUE_CREATED}, 'author', {_author("i")}, 'comments', cm.connection)"""
PROJECT_NODE = "json_build_object('key', p.key, 'name', p.name, 'issues', iss.connection)"
COMMENT_NODE = f"""json_build_object(
    'body', c.body, 'createdAt', {COMMENT_CREATED}, 'author', {_author("c")})"""

# The levels under a row past its page's end are not read (`rn <= limit` in their WHERE
# is a one-time filter).
DASHBOARD_EDGES_SQL = f"""
SELECT json_build_object('data', json_build_object('organizations',
  {_connection("o", "$1", "json_build_object('projects', pr.connection)")}))::text
FROM (
  SELECT o.id, row_number() OVER (ORDER BY o.id) AS rn, {_by_id("o")} AS cursor
  FROM organizations o ORDER BY o.id LIMIT $1 + 1
) AS o
CROSS JOIN LATERAL (
  SELECT {_connection("p", "$2", PROJECT_NODE)} AS connection
  FROM (
    SELECT p.id, p.key, p.name, row_number() OVER (ORDER BY p.id) AS rn,
           {_by_id("p")} AS cursor
    FROM projects p
    WHERE p.organization_id = o.id AND p.visibility = 'PUBLIC' AND o.rn <= $1
    ORDER BY p.id LIMIT $2 + 1
  ) AS p
  CROSS JOIN LATERAL (
    SELECT {_connection("i", "$3", ISSUE_NODE)} AS connection
    FROM (
      SELECT i.id, i.number, i.title, i.state, i.priority, i.created_at, i.author_id,
             row_number() OVER (ORDER BY i.created_at, i.id) AS rn,
             {_by_created_at("i")} AS cursor
      FROM issues i WHERE i.project_id = p.id AND p.rn <= $2
      ORDER BY i.created_at, i.id LIMIT $3 + 1
    ) AS i
    CROSS JOIN LATERAL (
      SELECT {_connection("c", "$4", COMMENT_NODE)} AS connection
      FROM (
        SELECT c.id, c.body, c.created_at, c.author_id,
               row_number() OVER (ORDER BY c.created_at, c.id) AS rn,
               {_by_created_at("c")} AS cursor
        FROM comments c WHERE c.issue_id = i.id AND i.rn <= $3
        ORDER BY c.created_at, c.id LIMIT $4 + 1
      ) AS c
    ) AS cm
  ) AS iss
) AS pr
"""

STATEMENTS = {"Dashboard": DASHBOARD_SQL, "DashboardEdges": DASHBOARD_EDGES_SQL}
OPERATION = re.compile(r"\bquery\s+(\w+)")
HEADERS = {"Server-Timing": 'sql;desc="1 statements"'}


def create_app() -> Starlette:
    settings = get_settings()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        url = settings.database_url or os.environ["DATABASE_URL"]
        state["pool"] = await asyncpg.create_pool(
            url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            command_timeout=settings.db_command_timeout,
            server_settings={"timezone": "UTC", "application_name": "issuegraph-floor"},
        )
        try:
            yield
        finally:
            await state["pool"].close()

    async def dashboard(request: Request) -> Response:
        # The body is read and parsed, as the API does; only the operation's name is used.
        found = OPERATION.search(orjson.loads(await request.body()).get("query") or "")
        sql = STATEMENTS.get(found.group(1)) if found else None
        if sql is None:
            return PlainTextResponse("the floor answers the dashboard queries only", 400)
        async with state["pool"].acquire() as connection:
            text = await connection.fetchval(sql, ORGANIZATIONS, PROJECTS, ISSUES, COMMENTS)
        return Response(text.encode(), media_type="application/json", headers=HEADERS)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/graphql", dashboard, methods=["POST"]), Route("/healthz", healthz)],
        lifespan=lifespan,
    )
