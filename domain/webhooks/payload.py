"""The JSON body a webhook receives for an event, and its signature.

Objects carry the global ids the API uses (`node(id:)` finds them) and the fields a receiver
most often needs; the issue is as it was when the delivery was first sent (within a second
of the event, as a rule; its id alone once deleted). A transfer (`issue_transferred`) names
the project the issue left in `fromProject`; `project` is the one it joined. Every retry
and redelivery sends the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import orjson

from loaders.writes.deliveries import EventRecord

NodeId = Callable[[str, int], str]  # (type name, primary key) -> global id


def render(event: EventRecord, node_id: NodeId) -> str:
    body: dict[str, Any] = {
        "event": {
            "id": str(event.id),
            "kind": event.kind,
            "createdAt": event.created_at,
        },
        "actor": (
            {"id": node_id("User", event.actor_id), "login": event.actor_login}
            if event.actor_id is not None
            else None
        ),
        "organization": {
            "id": node_id("Organization", event.organization_id),
            "slug": event.organization_slug,
        },
        "project": {
            "id": node_id("Project", event.project_id),
            "key": event.project_key,
            "name": event.project_name,
        },
        "issue": (
            {
                "id": node_id("Issue", event.issue_id),
                "number": event.issue_number,
                "title": event.issue_title,
                "state": event.issue_state,
                "priority": event.issue_priority,
                "createdAt": event.issue_created_at,
                "updatedAt": event.issue_updated_at,
            }
            if event.issue_number is not None
            else {"id": node_id("Issue", event.issue_id)}  # deleted: its id alone
        ),
        "comment": (
            {"id": node_id("Comment", event.comment_id), "body": event.comment_body}
            if event.comment_id is not None and event.comment_body is not None
            else None
        ),
        "labels": [
            {"id": node_id("Label", label_id), "name": name}
            for label_id, name in zip(event.label_ids, event.label_names, strict=True)
        ],
        "fromProject": (  # issue_transferred: the project the issue left
            {
                "id": node_id("Project", event.from_project_id),
                "key": event.from_project_key,
                "name": event.from_project_name,
            }
            if event.from_project_id is not None
            else None
        ),
    }
    return orjson.dumps(body, option=orjson.OPT_UTC_Z).decode()


def signature(secret: str, body: bytes) -> str:
    """The X-Issuegraph-Signature-256 header: HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
