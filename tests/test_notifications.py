"""Mentions and notifications: who a change concerns, written in its transaction, never the
actor, never someone who may not read the issue; the unread counter; following, muting."""

from __future__ import annotations

from typing import Any

import asyncpg

from domain.following import mentioned_logins
from domain.policy import Access, Policy, Viewer
from execution.ids import encode_id
from loaders.rows import ProjectRow, UserRow
from tests.conftest import Run

INBOX = """{ viewer { unreadNotificationCount notifications(first: 20) { totalCount nodes {
  reason isUnread issue { title } comment { body } actor { login } } } } }"""
COMMENT = """mutation($i: ID!, $b: String!) { addComment(input: {issueId: $i, body: $b}) {
  comment { id } userErrors { code } } }"""


async def _team(make: Any, visibility: str = "PRIVATE") -> dict[str, Any]:
    """An organization with an owner, members and an outsider; an issue by `author` in a
    project of it."""
    names = ("owner", "author", "member", "other", "outsider")
    ids = {name: await make.user(login=f"nf-{name}") for name in names}
    org = await make.organization(slug="nf-org")
    for name in ("owner", "author", "member", "other"):
        await make.member(org, ids[name], "OWNER" if name == "owner" else "MEMBER")
    project = await make.project(org, key="NF", visibility=visibility)
    issue = await make.issue(project, ids["author"], title="The issue")
    return {"ids": ids, "org": org, "issue": encode_id("Issue", issue), "issue_pk": issue}


def _inbox(outcome: Any) -> list[tuple[str, str | None, str | None]]:
    viewer = outcome.data["viewer"]
    return [
        (n["reason"], n["actor"]["login"] if n["actor"] else None, (n["comment"] or {}).get("body"))
        for n in viewer["notifications"]["nodes"]
    ]


def test_mentions_are_found_in_prose_not_in_code_or_addresses() -> None:
    body = (
        "Thanks @Alice and @bob-2! cc @alice.\n"
        "Mail carol@example.com, see `@dave` and\n```\n@erin\n```\n(@frank) @-x @"
    )
    assert mentioned_logins(body) == ["alice", "bob-2", "frank"]
    assert len(mentioned_logins(" ".join(f"@u{n}" for n in range(80)))) == 50


async def test_a_comment_notifies_the_mentioned_and_the_author_but_not_the_actor(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    body = "@nf-member and @nf-outsider and @nobody-here and @nf-other (and me, @nf-owner)"

    outcome = await run(COMMENT, {"i": team["issue"], "b": body}, viewer="nf-owner")

    assert outcome.errors == []
    member = await run(INBOX, viewer="nf-member")
    assert _inbox(member) == [("MENTIONED", "nf-owner", body)]
    assert member.data["viewer"]["unreadNotificationCount"] == 1
    author = await run(INBOX, viewer="nf-author")
    assert _inbox(author) == [("AUTHOR", "nf-owner", body)]
    # the outsider may not read the private issue: not mentioned, not notified
    for login in ("nf-outsider", "nf-owner"):
        nothing = await run(INBOX, viewer=login)
        assert nothing.data["viewer"]["notifications"]["totalCount"] == 0
        assert nothing.data["viewer"]["unreadNotificationCount"] == 0
    mentioned = await conn.fetch(
        "SELECT u.login FROM mentions m JOIN users u ON u.id = m.user_id ORDER BY u.login"
    )
    assert [r[0] for r in mentioned] == ["nf-member", "nf-other", "nf-owner"]
    timeline = await run(
        """query($i: ID!) { node(id: $i) { ... on Issue { timelineItems(itemTypes:
        [MENTIONED_EVENT]) { nodes { ... on MentionedEvent { actor { login } user { login }
        comment { body } } } } } } }""",
        {"i": team["issue"]},
        viewer="nf-member",
    )
    assert timeline.data["node"]["timelineItems"]["nodes"] == [
        {"actor": {"login": "nf-owner"}, "user": {"login": login}, "comment": {"body": body}}
        for login in ("nf-member", "nf-other", "nf-owner")  # as the body names them
    ]


async def test_a_comment_mentioning_ten_users_notifies_them_in_one_statement(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make, visibility="PUBLIC")
    logins = [f"nf-many-{n}" for n in range(10)]
    for login in logins:
        await make.user(login=login)

    outcome = await run(
        COMMENT, {"i": team["issue"], "b": " ".join(f"@{x}" for x in logins)}, viewer="nf-owner"
    )

    assert outcome.errors == []
    writes = [sql for sql, _ in outcome.statements if "INSERT INTO notifications" in sql]
    assert len(writes) == 1
    reasons = await conn.fetch(
        "SELECT reason, count(*) FROM notifications WHERE issue_id = $1 GROUP BY 1 ORDER BY 1",
        team["issue_pk"],
    )
    assert [tuple(r) for r in reasons] == [("AUTHOR", 1), ("MENTIONED", 10)]


async def test_the_unread_count_is_a_counter_kept_by_reads_and_deletes(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    for n in range(3):
        await run(COMMENT, {"i": team["issue"], "b": f"note {n}"}, viewer="nf-owner")
    count = "{ viewer { unreadNotificationCount } }"

    before = await run(count, viewer="nf-author")

    assert before.data == {"viewer": {"unreadNotificationCount": 3}}
    read = [sql for sql, _ in before.statements if "notification" in sql]
    assert len(read) == 1 and "notification_counters" in read[0] and "count(" not in read[0]
    page = await run("{ viewer { notifications(first: 1) { nodes { id } } } }", viewer="nf-author")
    newest = page.data["viewer"]["notifications"]["nodes"][0]["id"]
    marked = await run(
        """mutation($ids: [ID!]) { markNotificationsRead(input: {ids: $ids}) {
          marked viewer { unreadNotificationCount } userErrors { code } } }""",
        {"ids": [newest]},
        viewer="nf-author",
    )
    assert marked.data["markNotificationsRead"] == {
        "marked": 1,
        "viewer": {"unreadNotificationCount": 2},
        "userErrors": [],
    }
    unread = await run(
        "{ viewer { notifications(unreadOnly: true) { totalCount nodes { isUnread } } } }",
        viewer="nf-author",
    )
    assert unread.data["viewer"]["notifications"] == {
        "totalCount": 2,
        "nodes": [{"isUnread": True}, {"isUnread": True}],
    }
    # a deleted comment takes its unread notification with it
    await conn.execute("DELETE FROM comments WHERE body = 'note 0'")
    assert (await run(count, viewer="nf-author")).data == {"viewer": {"unreadNotificationCount": 1}}
    everything = await run(
        "mutation { markNotificationsRead(input: {all: true}) { marked } }", viewer="nf-author"
    )
    assert everything.data == {"markNotificationsRead": {"marked": 1}}
    assert (await run(count, viewer="nf-author")).data == {"viewer": {"unreadNotificationCount": 0}}


async def test_mark_read_takes_ids_or_all_and_only_the_viewers_own(run: Run, make: Any) -> None:
    team = await _team(make)
    await run(COMMENT, {"i": team["issue"], "b": "hello"}, viewer="nf-owner")
    page = await run("{ viewer { notifications { nodes { id } } } }", viewer="nf-author")
    theirs = page.data["viewer"]["notifications"]["nodes"][0]["id"]
    mark = """mutation($input: MarkNotificationsReadInput!) { markNotificationsRead(input:
      $input) { marked userErrors { field code } } }"""

    neither = await run(mark, {"input": {}}, viewer="nf-member")
    both = await run(mark, {"input": {"ids": [theirs], "all": True}}, viewer="nf-member")
    not_mine = await run(mark, {"input": {"ids": [theirs]}}, viewer="nf-member")
    wrong_type = await run(mark, {"input": {"ids": [team["issue"]]}}, viewer="nf-member")
    anonymous = await run(mark, {"input": {"all": True}})

    refused = {"marked": 0, "userErrors": [{"field": ["input", "ids"], "code": "INVALID"}]}
    assert neither.data["markNotificationsRead"] == both.data["markNotificationsRead"] == refused
    assert not_mine.data["markNotificationsRead"] == {"marked": 0, "userErrors": []}
    assert wrong_type.codes == ["BAD_USER_INPUT"]
    assert anonymous.codes == ["UNAUTHENTICATED"]
    still = await run("{ viewer { unreadNotificationCount } }", viewer="nf-author")
    assert still.data["viewer"]["unreadNotificationCount"] == 1


async def test_nobody_else_sees_a_users_notifications(run: Run, make: Any) -> None:
    team = await _team(make)
    await run(COMMENT, {"i": team["issue"], "b": "hello"}, viewer="nf-owner")
    query = """{ user(login: "nf-author") { unreadNotificationCount
      notifications { totalCount nodes { reason } } } }"""

    for viewer in ("nf-owner", None):
        outcome = await run(query, viewer=viewer)
        assert outcome.data["user"] == {
            "unreadNotificationCount": None,
            "notifications": {"totalCount": 0, "nodes": []},
        }


async def test_followers_muters_and_assignees(run: Run, make: Any) -> None:
    team = await _team(make)
    subscribe = """mutation($i: ID!, $s: Boolean!) { subscribeToIssue(input: {issueId: $i,
      subscribed: $s}) { issue { title viewerSubscription } userErrors { code } } }"""
    state = "query($i: ID!) { node(id: $i) { ... on Issue { viewerSubscription } } }"
    before = {
        login: (await run(state, {"i": team["issue"]}, viewer=login)).data["node"]
        for login in ("nf-author", "nf-other")
    }
    followed = await run(subscribe, {"i": team["issue"], "s": True}, viewer="nf-other")
    muted = await run(subscribe, {"i": team["issue"], "s": False}, viewer="nf-author")
    assert before == {
        "nf-author": {"viewerSubscription": "SUBSCRIBED"},
        "nf-other": {"viewerSubscription": "UNSUBSCRIBED"},
    }
    assert followed.data["subscribeToIssue"]["issue"] == {
        "title": "The issue",
        "viewerSubscription": "SUBSCRIBED",
    }
    assert muted.data["subscribeToIssue"]["issue"]["viewerSubscription"] == "IGNORED"
    public = await make.issue(await make.project(team["org"]), team["ids"]["author"])
    anonymous = await run(state, {"i": encode_id("Issue", public)})
    assert anonymous.data["node"] == {"viewerSubscription": None}

    await run(
        "mutation($i: ID!) { closeIssue(input: {issueId: $i}) { userErrors { code } } }",
        {"i": team["issue"]},
        viewer="nf-owner",
    )
    await run(
        """mutation($i: ID!, $a: ID!) { updateIssue(input: {issueId: $i, assigneeId: $a,
        body: "over to @nf-author"}) { userErrors { code } } }""",
        {"i": team["issue"], "a": encode_id("User", team["ids"]["member"])},
        viewer="nf-owner",
    )

    assert _inbox(await run(INBOX, viewer="nf-other")) == [("SUBSCRIBED", "nf-owner", None)]
    # muted: the author hears of nothing but a mention
    assert _inbox(await run(INBOX, viewer="nf-author")) == [("MENTIONED", "nf-owner", None)]
    assert _inbox(await run(INBOX, viewer="nf-member")) == [("ASSIGNED", "nf-owner", None)]


async def test_a_commenter_follows_the_issue_and_an_edit_notifies_only_new_mentions(
    run: Run, make: Any
) -> None:
    team = await _team(make)
    first = await run(COMMENT, {"i": team["issue"], "b": "I am in, @nf-member"}, viewer="nf-other")
    comment = first.data["addComment"]["comment"]["id"]
    edit = """mutation($c: ID!, $b: String!) { updateComment(input: {commentId: $c, body: $b})
      { userErrors { code } } }"""
    await run(edit, {"c": comment, "b": "I am in, @nf-member and @nf-owner"}, viewer="nf-other")
    await run(COMMENT, {"i": team["issue"], "b": "Thanks"}, viewer="nf-author")

    assert [r[0] for r in _inbox(await run(INBOX, viewer="nf-member"))] == ["MENTIONED"]
    assert [r[0] for r in _inbox(await run(INBOX, viewer="nf-owner"))] == ["MENTIONED"]
    # the commenter follows the issue: the author's reply reaches them
    assert _inbox(await run(INBOX, viewer="nf-other")) == [("SUBSCRIBED", "nf-author", "Thanks")]


async def test_a_member_who_leaves_loses_the_notifications_of_private_projects(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    await run(COMMENT, {"i": team["issue"], "b": "@nf-member look"}, viewer="nf-owner")
    assert (await run(INBOX, viewer="nf-member")).data["viewer"]["unreadNotificationCount"] == 1

    await conn.execute(
        "DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2",
        team["org"],
        team["ids"]["member"],
    )

    after = await run(INBOX, viewer="nf-member")
    assert after.data["viewer"] == {
        "unreadNotificationCount": 0,
        "notifications": {"totalCount": 0, "nodes": []},
    }
    # nor its timeline: the issue is gone for them
    timeline = await run(
        "query($i: ID!) { node(id: $i) { ... on Issue { timelineItems { totalCount } } } }",
        {"i": team["issue"]},
        viewer="nf-member",
    )
    assert timeline.data == {"node": None}


async def test_a_transfer_notifies_followers_who_may_read_where_it_went(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    """The author hears of the move; an outsider mentioned while the issue was public keeps
    no notification once it moves to a private project (count and list agree)."""
    team = await _team(make, visibility="PUBLIC")
    secret = await make.project(team["org"], key="NFS", visibility="PRIVATE")
    await run(COMMENT, {"i": team["issue"], "b": "@nf-outsider look"}, viewer="nf-member")
    outsider = await run(INBOX, viewer="nf-outsider")
    assert outsider.data["viewer"]["unreadNotificationCount"] == 1
    before = (await run(INBOX, viewer="nf-author")).data["viewer"]["unreadNotificationCount"]

    moved = await run(
        """mutation($i: ID!, $p: ID!) { transferIssue(input: {issueId: $i, projectId: $p}) {
           userErrors { code } } }""",
        {"i": team["issue"], "p": encode_id("Project", secret)},
        viewer="nf-owner",
    )
    assert moved.errors == [] and moved.data["transferIssue"]["userErrors"] == []

    author = await run(INBOX, viewer="nf-author")
    assert author.data["viewer"]["unreadNotificationCount"] == before + 1
    assert _inbox(author)[0] == ("AUTHOR", "nf-owner", None)
    assert (await run(INBOX, viewer="nf-outsider")).data["viewer"] == {
        "unreadNotificationCount": 0,
        "notifications": {"totalCount": 0, "nodes": []},
    }


async def test_the_sql_read_rule_is_the_policys(conn: asyncpg.Connection, make: Any) -> None:
    """Whom a change may notify (loaders.projects.readable_by) is whom the policy lets read."""
    from loaders.projects import readable_by

    org = await make.organization()
    member = await make.user()
    await make.member(org, member)
    stranger = await make.user()
    admin = await make.user(is_site_admin=True)
    access = Access()
    for visibility in ("PUBLIC", "PRIVATE"):
        project = await make.project(org, visibility=visibility)
        for user in (member, stranger, admin):
            in_sql = await conn.fetchval(
                f"SELECT {readable_by('u')} FROM users u, projects p WHERE u.id = $1 AND p.id = $2",
                user,
                project,
            )
            user_row = UserRow(
                *await conn.fetchrow(
                    "SELECT id, login, name, email, bio, is_site_admin, created_at FROM users"
                    " WHERE id = $1",
                    user,
                )
            )
            project_row = ProjectRow(
                *await conn.fetchrow(
                    "SELECT id, organization_id, key, name, description, visibility, archived_at,"
                    " created_at FROM projects WHERE id = $1",
                    project,
                )
            )
            roles = {org: "MEMBER"} if user == member else {}
            assert in_sql == Policy(Viewer(user_row, roles), access).can_read(project_row)


async def test_the_mention_conditions_find_the_issues_that_concern_a_user(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    from loaders.mentions import involves_user, mentions_user

    team = await _team(make)
    other_issue = await make.issue(
        await conn.fetchval("SELECT project_id FROM issues WHERE id = $1", team["issue_pk"]),
        team["ids"]["owner"],
    )
    await run(COMMENT, {"i": team["issue"], "b": "@nf-member see"}, viewer="nf-owner")
    member = team["ids"]["member"]

    mentioning = await conn.fetch(
        f"SELECT i.id FROM issues i WHERE {mentions_user('i', '$1::bigint')}", member
    )
    involving = await conn.fetch(
        f"SELECT i.id FROM issues i WHERE {involves_user('i', '$1::bigint')} ORDER BY i.id",
        team["ids"]["owner"],
    )
    assert [r[0] for r in mentioning] == [team["issue_pk"]]
    assert [r[0] for r in involving] == [team["issue_pk"], other_issue]  # commented, opened
