"""Conditions on issues about the users they concern, for the statements that filter issues
(search's `mentions:` and `involves:`): SQL text over an issue aliased as given and a user
id given as a parameter placeholder (such as `$5::bigint`)."""

from __future__ import annotations


def mentions_user(issue: str, user: str) -> str:
    """The issue's body or one of its comments mentions the user (`mentions` table, which
    holds only users who may read the issue; index mentions_user_issue)."""
    return (
        f"EXISTS (SELECT 1 FROM mentions mn WHERE mn.user_id = {user} AND mn.issue_id = {issue}.id)"
    )


def involves_user(issue: str, user: str) -> str:
    """The user opened the issue, is assigned to it, commented on it or is mentioned in it."""
    return (
        f"({issue}.author_id = {user} OR {issue}.assignee_id = {user}"
        f" OR EXISTS (SELECT 1 FROM comments ic WHERE ic.issue_id = {issue}.id"
        f" AND ic.author_id = {user}) OR {mentions_user(issue, user)})"
    )
