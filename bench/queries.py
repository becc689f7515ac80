"""The workloads, as named documents; add an entry to `WORKLOADS` to measure another.

DASHBOARD is the nested read the project measures everywhere: about 20 projects, 10
issues each with their author, 5 comments each with their author. One organization cannot
hold 20 projects (the generator gives each 10, of which 2 or 3 are private and hidden from
an anonymous viewer), so it reads the first 5 projects of each of the first 4
organizations: exactly 20 at scale 1. The report prints what each response really held.
"""

from __future__ import annotations

from typing import Any

import httpx

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

ISSUE_PAGE = """
query IssuePage {
  organization(slug: "acme") {
    project(key: "WEB") {
      issue(number: 1) {
        title body
        author { login }
        labels(first: 10) { nodes { name color } }
        comments(first: 50) { totalCount nodes { body createdAt author { login name } } }
      }
    }
  }
}
"""

NODES_100 = """
query Nodes100($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Issue { number title author { login } }
  }
}
"""

ISSUE_IDS = """
query IssueIds {
  organization(slug: "acme") { project(key: "WEB") { issues(first: 100) { nodes { id } } } }
}
"""


async def issue_ids(client: httpx.AsyncClient) -> dict[str, Any]:
    data = await fetch(client, ISSUE_IDS)
    ids = [node["id"] for node in data["organization"]["project"]["issues"]["nodes"]]
    if len(ids) != 100:
        raise RuntimeError(f"expected 100 issue ids of acme/WEB, got {len(ids)}")
    return {"ids": ids}


WORKLOADS: list[Workload] = [
    Workload("dashboard", DASHBOARD),
    Workload("issue_page", ISSUE_PAGE),
    Workload("nodes_100", NODES_100, setup=issue_ids),
]
