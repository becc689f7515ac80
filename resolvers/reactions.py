"""Reactions: GitHub's eight emoji on issues and comments, shown as `reactionGroups`."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from domain.context import Context
from execution.fields import value
from loaders import reactions
from loaders.rows import IssueRow


@strawberry.enum(description="An emoji reaction, as on GitHub.")
class ReactionContent(Enum):
    THUMBS_UP = "THUMBS_UP"
    THUMBS_DOWN = "THUMBS_DOWN"
    LAUGH = "LAUGH"
    HOORAY = "HOORAY"
    CONFUSED = "CONFUSED"
    HEART = "HEART"
    ROCKET = "ROCKET"
    EYES = "EYES"


assert tuple(c.value for c in ReactionContent) == reactions.CONTENTS


@strawberry.type(description="The reactions of one content to an issue or a comment.")
class ReactionGroup:
    content: ReactionContent = strawberry.field(description="The emoji.")
    count: int = strawberry.field(description="How many people reacted with it.")
    viewer_has_reacted: bool = strawberry.field(description="The viewer is one of them.")


async def reaction_groups(context: Context, row: Any) -> list[ReactionGroup]:
    """Every content, in GitHub's order, with its count (0 when nobody chose it)."""
    loaders = context.loaders
    loader = loaders.reactions_by_issue if type(row) is IssueRow else loaders.reactions_by_comment
    user = context.viewer.user
    found = await loader.load((row.id, user.id if user is not None else 0))
    counts = found.counts if found is not None else {}
    return [
        ReactionGroup(
            content=ReactionContent(content),
            count=counts.get(content, (0, False))[0],
            viewer_has_reacted=counts.get(content, (0, False))[1],
        )
        for content in reactions.CONTENTS
    ]


@strawberry.interface(description="Something people may react to with an emoji.")
class Reactable:
    reaction_groups: list[ReactionGroup] = value(
        reaction_groups, "The reactions by content: all eight, in GitHub's order."
    )
