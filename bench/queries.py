"""The workloads, as named documents; add an entry to `WORKLOADS` to measure another.

- dashboard: the nested read the project measures everywhere: about 20 projects, 10
  issues each with their author, 5 comments each with their author. One organization
  cannot hold 20 projects (the generator gives each 10, of which 2 or 3 are private and
  hidden from an anonymous viewer), so it reads the first 5 projects of each of the first
  4 organizations: exactly 20 at scale 1. bench/floor.py answers it without GraphQL.
- edges: the dashboard read as a Relay client writes it: `edges { cursor node }` and
  `pageInfo` (all four fields) at each level, about 1,200 cursors. bench/floor.py answers
  it too, cursors and all.
- issue_page: one issue with its labels and 50 of its comments (WEB #1 holds 60 more than
  the generator gave it, bench/database.py), and the comment count.
- nodes_100: 100 issues by global id, with their authors.
- deep_page: 20 issues past the 10,000th of the 12,000 of DEEP (bench/database.py), after
  a cursor computed at set-up (url-safe base64 of `[1, "CREATED_AT", created_at, id]`)
  and checked against the API's own cursors. Keyset pagination: no OFFSET, so the cost
  must not depend on the depth.
- mutation: createIssue as alice (OWNER of acme) in the public project BENCH, whose
  issues are deleted at the start of each run and once it is measured. It writes an
  issue, an event (outbox, NOTIFY) and bumps the project's issue counter under its row
  lock, so concurrent creates in one project queue on that lock: the figures include that
  wait. Both API servers run mutations on the standard executor (the compiled one covers
  queries only).

- search_*: searchIssues, anonymous (public projects only), first 20: a common word and
  two qualifiers (`crash is:open label:bug`) by relevance and by `updated-desc`; a rare
  word (`4321`: DEEP #4321 alone, at every scale); qualifiers only (`is:open
  priority:>=3 label:bug`, newest first and by `updated-desc`); and the 20 results after
  the 500th (`_deep`), after a cursor the set-up reads from the API.

The report prints what each response really held.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import httpx
import orjson

from bench.database import (
    DEEP_PROJECT,
    ISSUE_PAGE_NUMBER,
    ISSUE_PAGE_PROJECT,
    ORGANIZATION,
    WRITE_PROJECT,
)
from bench.graphql import Workload, fetch

DASHBOARD = """
query Dashboard {
  organizations(first: 4) {
    nodes {
      projects(first: 5) {
        nodes {
          key name
          issues(first: 10) {
            nodes {
              number title state priority createdAt
              author { login name }
              comments(first: 5) { nodes { body createdAt author { login name } } }
            }
          }
        }
      }
    }
  }
}
"""

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"

EDGES = f"""
query DashboardEdges {{
  organizations(first: 4) {{
    {PAGE_INFO}
    edges {{
      cursor
      node {{
        projects(first: 5) {{
          {PAGE_INFO}
          edges {{
            cursor
            node {{
              key name
              issues(first: 10) {{
                {PAGE_INFO}
                edges {{
                  cursor
                  node {{
                    number title state priority createdAt
                    author {{ login name }}
                    comments(first: 5) {{
                      {PAGE_INFO}
                      edges {{ cursor node {{ body createdAt author {{ login name }} }} }}
                    }}
                  }}
                }}
              }}
            }}
          }}
        }}
      }}
    }}
  }}
}}
"""

ISSUE_PAGE = f"""
query IssuePage {{
  organization(slug: "{ORGANIZATION}") {{
    project(key: "{ISSUE_PAGE_PROJECT}") {{
      issue(number: {ISSUE_PAGE_NUMBER}) {{
        title body
        author {{ login }}
        labels(first: 10) {{ nodes {{ name color }} }}
        comments(first: 50) {{ totalCount nodes {{ body createdAt author {{ login name }} }} }}
      }}
    }}
  }}
}}
"""

NODES_100 = """
query Nodes100($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Issue { number title author { login } }
  }
}
"""

ISSUE_IDS = f"""
query IssueIds {{
  organization(slug: "{ORGANIZATION}") {{
    project(key: "{ISSUE_PAGE_PROJECT}") {{ issues(first: 100) {{ nodes {{ id }} }} }}
  }}
}}
"""

DEEP_PAGE = f"""
query DeepPage($after: String!) {{
  organization(slug: "{ORGANIZATION}") {{
    project(key: "{DEEP_PROJECT}") {{
      issues(first: 20, after: $after) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ number title state priority createdAt author {{ login name }} }}
      }}
    }}
  }}
}}
"""

DEEP_ISSUE = f"""
query DeepIssue($number: Int!) {{
  organization(slug: "{ORGANIZATION}") {{
    project(key: "{DEEP_PROJECT}") {{ issue(number: $number) {{ id createdAt }} }}
  }}
}}
"""

DEEP_CHECK = f"""
query DeepCheck($after: String!) {{
  organization(slug: "{ORGANIZATION}") {{
    project(key: "{DEEP_PROJECT}") {{
      issues(first: 1, after: $after) {{ pageInfo {{ endCursor }} nodes {{ number }} }}
    }}
  }}
}}
"""

WRITE_PROJECT_ID = f"""
query WriteProject {{
  organization(slug: "{ORGANIZATION}") {{ project(key: "{WRITE_PROJECT}") {{ id }} }}
}}
"""

CREATE_ISSUE = """
mutation CreateIssue($project: ID!, $title: String!) {
  createIssue(input: {projectId: $project, title: $title, body: "Written by the bench."}) {
    issue { id number title state createdAt author { login } }
    userErrors { field code message }
  }
}
"""

SEARCH = """
query Search($q: String!, $after: String) {
  searchIssues(query: $q, first: 20, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { number title state priority updatedAt author { login } }
  }
}
"""
SEARCH_CURSOR = """
query SearchCursor($q: String!, $after: String) {
  searchIssues(query: $q, first: 100, after: $after) { pageInfo { endCursor } }
}
"""
COMMON = "crash is:open label:bug"
QUALIFIERS = "is:open priority:>=3 label:bug"
SEARCH_DEPTH = 500  # a deep page of results starts after this many

DEEP_AFTER = 10_000  # the page starts after this many issues


async def issue_ids(client: httpx.AsyncClient) -> dict[str, Any]:
    data = await fetch(client, ISSUE_IDS)
    ids = [node["id"] for node in data["organization"]["project"]["issues"]["nodes"]]
    if len(ids) != 100:
        raise RuntimeError(f"expected 100 issue ids of acme/WEB, got {len(ids)}")
    return {"ids": ids}


def issue_cursor(global_id: str, created_at: str) -> str:
    """The cursor of an issue in the default order, as execution/pagination.py writes it."""
    raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    type_name, _, pk = raw.partition(":")
    if type_name != "Issue":
        raise RuntimeError(f"not an issue id: {global_id}")
    # the API writes `createdAt` in RFC 3339 with Z, a cursor the value's isoformat()
    moment = datetime.fromisoformat(created_at).isoformat()
    text = orjson.dumps([1, "CREATED_AT", moment, int(pk)])
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode()


async def deep_cursor(client: httpx.AsyncClient) -> dict[str, Any]:
    """The cursor of DEEP's 10,000th issue, checked against the API's own cursors."""
    cursors = []
    for number in (DEEP_AFTER - 1, DEEP_AFTER):
        data = await fetch(client, DEEP_ISSUE, {"number": number})
        issue = (data["organization"]["project"] or {}).get("issue")
        if issue is None:
            raise RuntimeError(f"{ORGANIZATION}/{DEEP_PROJECT} has no issue #{number}")
        cursors.append(issue_cursor(issue["id"], issue["createdAt"]))
    data = await fetch(client, DEEP_CHECK, {"after": cursors[0]})
    page = data["organization"]["project"]["issues"]
    if [n["number"] for n in page["nodes"]] != [DEEP_AFTER] or page["pageInfo"][
        "endCursor"
    ] != cursors[1]:
        raise RuntimeError(
            f"the computed cursors do not match the API's: {page}, expected "
            f"issue #{DEEP_AFTER} with cursor {cursors[1]}"
        )
    return {"after": cursors[1]}


def deep_page_check(data: Any) -> str | None:
    nodes = data["organization"]["project"]["issues"]["nodes"]
    if len(nodes) != 20 or nodes[0]["number"] != DEEP_AFTER + 1:
        return f"deep page: {len(nodes)} issues from #{nodes[0]['number'] if nodes else None}"
    return None


async def write_project(client: httpx.AsyncClient) -> dict[str, Any]:
    data = await fetch(client, WRITE_PROJECT_ID)
    project = data["organization"]["project"]
    if project is None:
        raise RuntimeError(f"the bench database has no public {ORGANIZATION}/{WRITE_PROJECT}")
    return {"project": project["id"], "title": "Bench issue"}


def created(data: Any) -> str | None:
    payload = data.get("createIssue")
    if payload is None:
        return "createIssue returned null"
    if payload["userErrors"]:
        return f"userErrors: {orjson.dumps(payload['userErrors']).decode()[:200]}"
    if payload["issue"] is None or payload["issue"]["author"]["login"] != "alice":
        return f"unexpected issue: {orjson.dumps(payload['issue']).decode()[:200]}"
    return None


def search_after(query: str) -> Any:
    """A set-up: the cursor after the first SEARCH_DEPTH results of `query`."""

    async def setup(client: httpx.AsyncClient) -> dict[str, Any]:
        after = None
        for _ in range(SEARCH_DEPTH // 100):
            data = await fetch(client, SEARCH_CURSOR, {"q": query, "after": after})
            after = data["searchIssues"]["pageInfo"]["endCursor"]
            if after is None:
                raise RuntimeError(f"{query!r} finds fewer than {SEARCH_DEPTH} issues")
        return {"after": after}

    return setup


def full_page(data: Any) -> str | None:
    found = len(data["searchIssues"]["nodes"])
    return None if found == 20 else f"a search page of {found} issues"


def _search(name: str, query: str, deep: bool = False) -> Workload:
    setup = search_after(query) if deep else None
    return Workload(
        name, SEARCH, {"q": query}, setup=setup, check=None if "rare" in name else full_page
    )


WORKLOADS: list[Workload] = [
    Workload("dashboard", DASHBOARD),
    Workload("edges", EDGES),
    Workload("issue_page", ISSUE_PAGE),
    Workload("nodes_100", NODES_100, setup=issue_ids),
    Workload("deep_page", DEEP_PAGE, setup=deep_cursor, check=deep_page_check),
    Workload(
        "mutation",
        CREATE_ISSUE,
        setup=write_project,
        signed_in=True,
        check=created,
        deterministic=False,
        writes=True,
    ),
    _search("search_words", COMMON),
    _search("search_words_updated", f"{COMMON} sort:updated-desc"),
    _search("search_words_deep", COMMON, deep=True),
    _search("search_words_updated_deep", f"{COMMON} sort:updated-desc", deep=True),
    _search("search_rare_word", "4321"),
    _search("search_qualifiers", QUALIFIERS),
    _search("search_qualifiers_updated", f"{QUALIFIERS} sort:updated-desc"),
    _search("search_qualifiers_deep", QUALIFIERS, deep=True),
]
