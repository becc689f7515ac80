"""Webhooks through the schema: who may manage them, what input is refused (server-side
request forgery included), what a hook shows (never its secret), deliveries made from
events in the event's transaction, and lists that cost one statement per level."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
import pytest

from domain.webhooks import guard
from execution.ids import encode_id
from resolvers.schema import schema
from tests.conftest import TEST_SETTINGS, Run, services_with

PRIVATE_OK = dataclasses.replace(
    services_with(), settings=TEST_SETTINGS.model_copy(update={"webhook_allow_private": True})
)
PUBLIC_URL = "https://93.184.216.34/hooks/issues?team=web"  # a public address, no DNS needed
CREATE = """mutation($input: CreateWebhookInput!) { createWebhook(input: $input) {
  webhook { id url events active disabledReason organization { slug } project { key } }
  userErrors { code } clientMutationId } }"""
UPDATE = """mutation($input: UpdateWebhookInput!) { updateWebhook(input: $input) {
  webhook { url events active } } }"""
DELETE = """mutation($input: DeleteWebhookInput!) { deleteWebhook(input: $input) {
  deletedWebhookId } }"""
REDELIVER = """mutation($input: RedeliverWebhookDeliveryInput!) {
  redeliverWebhookDelivery(input: $input) { delivery { state isRedelivery payload guid } } }"""
ISSUE = """mutation($input: CreateIssueInput!) { createIssue(input: $input) { issue { id } } }"""


async def _org(make: Any) -> dict[str, Any]:
    ids = {n: await make.user(login=f"hook-{n}") for n in ("owner", "admin", "member", "out")}
    org = await make.organization(slug="hook-org")
    for name, role in (("owner", "OWNER"), ("admin", "ADMIN"), ("member", "MEMBER")):
        await make.member(org, ids[name], role)
    project = await make.project(org, key="HOOK", visibility="PRIVATE")
    other = await make.project(org, key="ELSE")
    return {
        "ids": ids,
        "org_pk": org,
        "org": encode_id("Organization", org),
        "project_pk": project,
        "project": encode_id("Project", project),
        "other": encode_id("Project", other),
    }


def _input(**overrides: Any) -> dict[str, Any]:
    return {"url": PUBLIC_URL, "events": ["OPENED", "COMMENTED"], "secret": "s3cret"} | overrides


async def _hooks(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM webhooks"))


async def test_an_admin_creates_a_hook_on_an_organization_or_a_project(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _org(make)
    on_org = await run(CREATE, {"input": _input(organizationId=team["org"])}, "hook-admin")
    on_project = await run(
        CREATE,
        {"input": _input(projectId=team["project"], events=["CLOSED"], clientMutationId="k")},
        "hook-owner",
    )
    assert on_org.errors == [] and on_project.errors == []
    hook = on_org.data["createWebhook"]["webhook"]
    assert hook["url"] == PUBLIC_URL and hook["events"] == ["COMMENTED", "OPENED"]
    assert hook["active"] is True and hook["disabledReason"] is None
    assert hook["organization"] == {"slug": "hook-org"} and hook["project"] is None
    assert on_project.data["createWebhook"]["webhook"]["project"] == {"key": "HOOK"}
    assert on_project.data["createWebhook"]["clientMutationId"] == "k"
    # the secret is stored for signing, and nothing in the schema reads it back
    assert await conn.fetchval("SELECT secret FROM webhooks WHERE url = $1 LIMIT 1", PUBLIC_URL)
    for type_name in ("Webhook", "WebhookDelivery", "WebhookPayload"):
        fields = schema._schema.type_map[type_name].fields  # type: ignore[union-attr]
        assert not any("secret" in name.lower() for name in fields), type_name


async def test_members_and_outsiders_may_not_manage_or_see_hooks(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _org(make)
    created = await run(CREATE, {"input": _input(organizationId=team["org"])}, "hook-owner")
    hook = created.data["createWebhook"]["webhook"]["id"]
    before = await _hooks(conn)
    for login in ("hook-member", "hook-out"):
        refused = await run(CREATE, {"input": _input(organizationId=team["org"])}, login)
        assert refused.codes == ["FORBIDDEN"], login
    anonymous = await run(CREATE, {"input": _input(organizationId=team["org"])})
    assert anonymous.codes == ["UNAUTHENTICATED"]
    assert await _hooks(conn) == before
    for login in ("hook-member", "hook-out", None):
        # a hook does not exist for them: not listed, not counted, not found
        seen = await run(
            """query($id: ID!, $org: ID!) { node(id: $id) { id }
               org: node(id: $org) { ... on Organization { viewerCanManageWebhooks
                 webhooks { totalCount nodes { id } } } } }""",
            {"id": hook, "org": team["org"]},
            login,
        )
        assert seen.data["node"] is None, login
        assert seen.data["org"] == {
            "viewerCanManageWebhooks": False,
            "webhooks": {"totalCount": 0, "nodes": []},
        }
        changed = await run(UPDATE, {"input": {"webhookId": hook, "active": False}}, login)
        assert changed.codes == ["NOT_FOUND"], login
    admin = await run(
        "query($id: ID!) { node(id: $id) { ... on Webhook { url active } } }",
        {"id": hook},
        "hook-admin",
    )
    assert admin.data["node"] == {"url": PUBLIC_URL, "active": True}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::1]:9000/", "::1 is a loopback address"),
        ("http://localhost:9000/", "localhost resolves to"),
        ("http://2130706433/", "2130706433 resolves to 127.0.0.1, which is a loopback"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://[::ffff:127.0.0.1]/", "is a loopback address (as IPv6)"),
        ("http://100.64.0.1/", "100.64.0.1 is not a public address"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ],
)
async def test_hooks_to_private_addresses_are_refused_without_the_setting(
    run: Run, make: Any, conn: asyncpg.Connection, url: str, says: str
) -> None:
    team = await _org(make)
    refused = await run(
        CREATE, {"input": _input(url=url, organizationId=team["org"])}, "hook-admin"
    )
    assert refused.codes == ["BAD_USER_INPUT"] and refused.data == {"createWebhook": None}
    assert says in refused.errors[0]["message"]
    assert refused.errors[0]["extensions"]["argument"] == "url"
    assert await _hooks(conn) == 0
    if "multicast" in says or "unspecified" in says:
        return  # never a receiver, whatever the setting
    allowed = await run(
        CREATE,
        {"input": _input(url=url, organizationId=team["org"])},
        "hook-admin",
        services=PRIVATE_OK,
    )
    assert allowed.errors == [] and allowed.data["createWebhook"]["webhook"]["url"] == url


@pytest.mark.parametrize(
    ("changes", "argument", "says"),
    [
        ({"url": "ftp://example.com/x"}, "url", "must start with http:// or https://"),
        ({"url": "file:///etc/passwd"}, "url", "must start with http:// or https://"),
        ({"url": "http:///nohost"}, "url", "has no host"),
        ({"url": "https://user:pw@93.184.216.34/"}, "url", "user name or password"),
        ({"url": "https://93.184.216.34:99999/"}, "url", "malformed"),
        ({"url": "https://93.184.216.34:0/"}, "url", "port must be 1 to 65535"),
        ({"url": "https://93.184.216.34/a b"}, "url", "spaces"),
        ({"url": "https://93.184.216.34/#frag"}, "url", "fragment"),
        ({"url": "https://no-such-host.invalid/"}, "url", "does not resolve"),
        ({"url": "https://93.184.216.34/" + "a" * 2100}, "url", "at most 2,048"),
        ({"events": []}, "events", "at least one"),
        ({"events": ["RESYNC"]}, "events", "RESYNC"),
        ({"secret": ""}, "secret", "must not be empty"),
        ({"secret": "x" * 257}, "secret", "at most 256"),
        ({"organizationId": None}, "organizationId", "exactly one"),
        ({"projectId": "placeholder"}, "organizationId", "exactly one"),
    ],
)
async def test_bad_input_is_refused_precisely_and_writes_nothing(
    run: Run,
    make: Any,
    conn: asyncpg.Connection,
    changes: dict[str, Any],
    argument: str,
    says: str,
) -> None:
    team = await _org(make)
    given = _input(organizationId=team["org"]) | changes
    if given.get("projectId") == "placeholder":
        given["projectId"] = team["project"]
    refused = await run(CREATE, {"input": given}, "hook-admin", services=PRIVATE_OK)
    assert refused.codes == ["BAD_USER_INPUT"], refused.errors
    assert says in refused.errors[0]["message"]
    assert refused.errors[0]["extensions"]["argument"] == argument
    assert await _hooks(conn) == 0


async def test_update_validates_and_turning_on_again_forgets_failures(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _org(make)
    created = await run(CREATE, {"input": _input(organizationId=team["org"])}, "hook-admin")
    hook = created.data["createWebhook"]["webhook"]["id"]
    bad = await run(UPDATE, {"input": {"webhookId": hook, "url": "http://10.1.2.3/"}}, "hook-admin")
    assert bad.codes == ["BAD_USER_INPUT"]
    await conn.execute(
        "UPDATE webhooks SET active = false, disabled_at = now(),"
        " disabled_reason = 'Every delivery failed' WHERE id = $1",
        await conn.fetchval("SELECT max(id) FROM webhooks"),
    )
    shown = await run(
        "query($id: ID!) { node(id: $id) { ... on Webhook { active disabledReason } } }",
        {"id": hook},
        "hook-admin",
    )
    assert shown.data["node"] == {"active": False, "disabledReason": "Every delivery failed"}
    on = await run(
        UPDATE,
        {"input": {"webhookId": hook, "active": True, "events": ["CLOSED"], "secret": "new"}},
        "hook-admin",
    )
    assert on.data["updateWebhook"]["webhook"] == {
        "url": PUBLIC_URL,
        "events": ["CLOSED"],
        "active": True,
    }
    row = await conn.fetchrow("SELECT secret, disabled_at, disabled_reason FROM webhooks")
    assert tuple(row) == ("new", None, None)
    deleted = await run(DELETE, {"input": {"webhookId": hook}}, "hook-owner")
    assert deleted.data["deleteWebhook"]["deletedWebhookId"] == hook
    assert await _hooks(conn) == 0


async def test_matching_events_become_deliveries_in_their_own_transaction(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _org(make)
    admin = "hook-admin"
    everything = await run(CREATE, {"input": _input(organizationId=team["org"])}, admin)
    one_project = await run(
        CREATE, {"input": _input(projectId=team["other"], events=["OPENED"])}, admin
    )
    closed_only = await run(
        CREATE, {"input": _input(organizationId=team["org"], events=["CLOSED"])}, admin
    )
    assert not (everything.errors or one_project.errors or closed_only.errors)
    for project in ("project", "project", "other"):
        made = await run(ISSUE, {"input": {"projectId": team[project], "title": "t"}}, admin)
        assert made.errors == []
    kinds = await conn.fetch(
        "SELECT w.events, count(d.id) FROM webhooks w"
        " LEFT JOIN webhook_deliveries d ON d.webhook_id = w.id GROUP BY w.id ORDER BY w.id"
    )
    # 3 issues opened: the org-wide hook gets all 3, the other project's hook 1, CLOSED none
    assert [r[1] for r in kinds] == [3, 1, 0]
    pending = await conn.fetch(
        "SELECT state, attempts, body, kind, event_id IS NOT NULL FROM webhook_deliveries"
    )
    assert {tuple(r) for r in pending} == {("PENDING", 0, None, "OPENED", True)}


async def _deliveries(conn: asyncpg.Connection, make: Any, hooks: int, each: int) -> str:
    """An organization with `hooks` hooks, `each` deliveries per hook, `each` attempts per
    delivery; its slug."""
    user = await make.user(login=f"hook-counter-{hooks}")
    slug = f"hook-count-{hooks}"
    org = await make.organization(slug=slug)
    await make.member(org, user, "ADMIN")
    project = await make.project(org)
    issue = await make.issue(project, user)
    await conn.execute(
        "INSERT INTO webhooks (organization_id, project_id, url, events, secret)"
        " SELECT $1, CASE WHEN g % 2 = 0 THEN $2::bigint END, 'https://93.184.216.34/' || g,"
        " '{OPENED}', 's' FROM generate_series(1, $3) g",
        org,
        project,
        hooks,
    )
    await conn.execute(
        "INSERT INTO events (kind, project_id, issue_id) SELECT 'UPDATED', $1, $2"
        " FROM generate_series(1, $3)",
        project,
        issue,
        each,
    )
    await conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, kind, state, attempts, body)"
        " SELECT w.id, e.id, 'UPDATED', 'DELIVERED', 1, '{}' FROM webhooks w, events e"
        " WHERE w.organization_id = $1 AND e.issue_id = $2",
        org,
        issue,
    )
    await conn.execute(
        "INSERT INTO webhook_attempts (delivery_id, duration_ms, status_code)"
        " SELECT d.id, 12, 200 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id,"
        " generate_series(1, $2) WHERE w.organization_id = $1",
        org,
        each,
    )
    return slug


LISTS = """query($slug: String!, $n: Int!) { organization(slug: $slug) {
  webhooks(first: $n) { totalCount nodes { url events project { key }
    deliveries(first: $n) { totalCount nodes { guid state event payload attemptCount
      webhook { url } attempts(first: $n) { nodes { statusCode durationMs error startedAt } } } }
  } } } }"""


async def test_hooks_their_deliveries_and_attempts_cost_one_statement_per_level(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    counts = []
    for size in (2, 4):
        slug = await _deliveries(conn, make, size, size)
        outcome = await run(LISTS, {"slug": slug, "n": size}, f"hook-counter-{size}")
        assert outcome.errors == []
        hooks = outcome.data["organization"]["webhooks"]
        assert hooks["totalCount"] == size and len(hooks["nodes"]) == size
        for hook in hooks["nodes"]:
            assert hook["deliveries"]["totalCount"] == size
            for delivery in hook["deliveries"]["nodes"]:
                assert delivery["webhook"]["url"] == hook["url"]
                assert len(delivery["attempts"]["nodes"]) == size
        counts.append(len(outcome.statements))
    # the organization, its hooks and their count, their projects, their deliveries and
    # their count, the deliveries' attempts: the same at both sizes
    assert counts == [7, 7]


def test_the_guard_names_what_it_refuses() -> None:
    import ipaddress

    assert guard.refusal(ipaddress.ip_address("8.8.8.8")) is None
    assert guard.refusal(ipaddress.ip_address("2001:4860:4860::8888")) is None
    assert guard.refusal(ipaddress.ip_address("fe80::1")) == "a link-local address"
    assert guard.refusal(ipaddress.ip_address("fc00::1")) == "a private address"
    assert guard.refusal(ipaddress.ip_address("192.168.1.1")) == "a private address"
    assert guard.refusal(ipaddress.ip_address("2002:7f00:1::")) == "a loopback address (as IPv6)"
    target = guard.parse("https://Example.com:8443/a?b=1")
    assert target.url_to(ipaddress.ip_address("2001:db8::1")) == "https://[2001:db8::1]:8443/a?b=1"
    assert (target.host, target.netloc) == ("example.com", "Example.com:8443")


async def test_redelivery_sends_the_same_body_as_a_new_delivery(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _org(make)
    created = await run(CREATE, {"input": _input(organizationId=team["org"])}, "hook-admin")
    assert created.errors == []
    await run(ISSUE, {"input": {"projectId": team["project"], "title": "t"}}, "hook-admin")
    first = await conn.fetchrow("SELECT id, guid FROM webhook_deliveries")
    await conn.execute("UPDATE webhook_deliveries SET body = '{\"x\": 1}', state = 'FAILED'")
    delivery = encode_id("WebhookDelivery", first["id"])
    refused = await run(REDELIVER, {"input": {"deliveryId": delivery}}, "hook-member")
    assert refused.codes == ["NOT_FOUND"]
    again = await run(REDELIVER, {"input": {"deliveryId": delivery}}, "hook-admin")
    new = again.data["redeliverWebhookDelivery"]["delivery"]
    assert new["state"] == "PENDING" and new["isRedelivery"] is True
    assert new["payload"] == '{"x": 1}' and new["guid"] != str(first["guid"])


async def test_a_create_retried_with_its_client_mutation_id_makes_one_hook(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _org(make)
    given = _input(organizationId=team["org"], clientMutationId="hook-once")
    first = await run(CREATE, {"input": given}, "hook-admin")
    again = await run(CREATE, {"input": given}, "hook-admin")
    other = await run(CREATE, {"input": given | {"secret": "another"}}, "hook-admin")
    assert again.data["createWebhook"]["webhook"] == first.data["createWebhook"]["webhook"]
    assert other.data["createWebhook"]["userErrors"] == [{"code": "IDEMPOTENCY_KEY_REUSED"}]
    assert await _hooks(conn) == 1
