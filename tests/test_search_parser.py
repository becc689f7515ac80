"""The search query language: what each term means, and precise errors for bad ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import BadUserInput
from domain.search import parse
from loaders.issues import Condition


def _day(month: int, day: int, hour: int = 0, micro: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC).replace(microsecond=micro)


@pytest.mark.parametrize(
    ("query", "conditions"),
    [
        ("is:open", [Condition("state", ("OPEN",))]),
        ("-is:closed is:issue", [Condition("state", ("CLOSED",), negated=True)]),
        ("state:CLOSED", [Condition("state", ("CLOSED",))]),
        ("org:Acme", [Condition("organization", "acme")]),
        ("project:acme/web", [Condition("project", ("acme", "WEB"))]),
        ("author:Alice -assignee:bob", [
            Condition("author", "alice"), Condition("assignee", "bob", negated=True)]),
        ("author:@me", [Condition("author", "carol")]),
        ("mentions:Dave -involves:@me", [
            Condition("mentions", "dave"), Condition("involves", "carol", negated=True)]),
        ("no:assignee -no:label", [
            Condition("unassigned"), Condition("unlabeled", negated=True)]),
        ('label:"help wanted" -label:bug', [
            Condition("label", "help wanted"), Condition("label", "bug", negated=True)]),
        ("priority:2", [Condition("priority", (2,))]),
        ("priority:>2", [Condition("priority", (3, 4))]),
        ("priority:<=1", [Condition("priority", (0, 1))]),
        ("priority:1..3", [Condition("priority", (1, 2, 3))]),
        ("priority:*..1", [Condition("priority", (0, 1))]),
        ("created:2026-01-31", [Condition("created", (_day(1, 31), _day(2, 1)))]),
        ("created:>2026-01-31", [Condition("created", (_day(2, 1), None))]),
        ("updated:<2026-01-31", [Condition("updated", (None, _day(1, 31)))]),
        ("updated:2026-01-01..2026-01-31", [Condition("updated", (_day(1, 1), _day(2, 1)))]),
        ("created:2026-01-01..*", [Condition("created", (_day(1, 1), None))]),
        ("created:<=2026-01-31T10:00:00+01:00", [
            Condition("created", (None, _day(1, 31, 9, micro=1)))]),
    ],
)  # fmt: skip
def test_qualifiers(query: str, conditions: list[Condition]) -> None:
    found = parse(query, "carol")
    assert list(found.filter.conditions) == conditions
    assert found.filter.words is None
    assert found.order.name == "CREATED_AT" and found.order.descending


@pytest.mark.parametrize(
    ("query", "words", "order"),
    [
        ('crash "login page" -mobile is:open', 'crash "login page" -mobile', "RELEVANCE"),
        ("crash OR panic sort:updated-asc", "crash OR panic", "UPDATED_AT"),
        ("sort:relevance is:open", None, "CREATED_AT"),  # nothing to rank: newest first
        ("sort:comments-desc", None, "COMMENTS"),
        ("  ", None, "CREATED_AT"),
    ],
)
def test_words_go_to_full_text_search_and_decide_the_default_order(
    query: str, words: str | None, order: str
) -> None:
    found = parse(query)
    assert (found.filter.words, found.order.name) == (words, order)


@pytest.mark.parametrize(
    ("query", "qualifier", "position", "message"),
    [
        ("crash colour:red", "colour", 7, "Unknown qualifier `colour:`"),
        ("is:open label:", "label", 9, "`label:` needs a value"),
        ("priority:5", "priority", 1, "`priority:` takes 0 to 4, got '5'"),
        ("priority:>x", "priority", 1, "`priority:` takes 0 to 4, got 'x'"),
        ("a  created:2026-02-30", "created", 4, "`created:` takes a date"),
        ("updated:yesterday", "updated", 1, "`updated:` takes a date"),
        ("is:draft", "is", 1, "`is:` takes open or closed"),
        ("no:milestone", "no", 1, "`no:` takes assignee or label"),
        ("org:-acme", "org", 1, "`org:` takes an organization's slug"),
        ("project:acme", "project", 1, "`project:` takes ORGANIZATION/KEY"),
        ("author:@me", "author", 1, "`author:@me` needs a signed-in viewer"),
        ("assignee:a_b", "assignee", 1, "`assignee:` takes a login"),
        ("sort:best", "sort", 1, "`sort:` takes one of relevance"),
        ("sort:relevance sort:created-asc", "sort", 16, "`sort:` may be given once"),
        ("-sort:relevance", "sort", 1, "`sort:` cannot be negated"),
        ("mentions:@me", "mentions", 1, "`mentions:@me` needs a signed-in viewer"),
        ("x involves:a_b", "involves", 3, "`involves:` takes a login"),
    ],
)
def test_a_bad_term_names_its_qualifier_and_position(
    query: str, qualifier: str, position: int, message: str
) -> None:
    with pytest.raises(BadUserInput) as raised:
        parse(query)
    assert raised.value.extensions == {
        "code": "BAD_USER_INPUT",
        "argument": "query",
        "qualifier": qualifier,
        "position": position,
    }
    assert raised.value.message.startswith(message)
    assert raised.value.message.endswith(f"(at position {position} of the query).")


def test_an_unclosed_quote_a_long_query_and_nul_are_refused() -> None:
    with pytest.raises(BadUserInput, match=r"A quote is not closed \(at position 7"):
        parse('crash "login page')
    with pytest.raises(BadUserInput, match="at most 1000 characters"):
        parse("a " * 501)
    with pytest.raises(BadUserInput, match="NUL"):
        parse("crash\x00")
