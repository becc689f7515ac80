"""Markdown bodies as HTML: `bodyHTML` of issues and comments.

CommonMark with GitHub's tables, strikethrough and task lists (markdown-it-py and its
plugins), raw HTML allowed as on GitHub, then sanitized by nh3 (the Rust ammonia
sanitizer) to an allow-list of tags, attributes, classes, CSS properties and URL schemes:
no script, no event handler, no `javascript:` or `data:` link, no style but alignment.
`#123` becomes a link to that issue of the body's project and `@login` to that user,
except in code and inside links; the references are not looked up (a number or login that
does not exist links to where it would be).

The HTML is rendered when a body is written and stored beside it. Its links are written
as paths from the site's root (`/acme/WEB/issues/12`, `/alice`), so that the stored HTML
does not depend on the `PUBLIC_URL` setting: `absolute` prefixes them when read.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Hashable

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.tasklists import tasklists_plugin

REFERENCE = re.compile(
    r"(?<![\w/#&@.-])(?:#(?P<number>[1-9][0-9]{0,9})|@(?P<login>[A-Za-z0-9][A-Za-z0-9-]{0,38}))"
    r"(?![\w-])"
)
ROOT_RELATIVE = re.compile(r'(<(?:a|img) [^>]*?(?:href|src)=")/(?!/)')
TAGS = (nh3.ALLOWED_TAGS - {"map", "area"}) | {"input"}
ATTRIBUTES = {
    **{tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align", "colspan", "rowspan", "style"},
    "td": {"align", "colspan", "rowspan", "style"},
    "code": set(),
}
ATTRIBUTES.pop("area", None)
CLASSES = {
    "ul": {"contains-task-list"},
    "ol": {"contains-task-list"},
    "li": {"task-list-item"},
    "input": {"task-list-item-checkbox"},
    "a": {"issue-reference", "user-mention"},
}
INPUT_VALUES = {"input": {"checked": {"checked", ""}}}
FORCED = {"input": {"type": "checkbox", "disabled": "disabled"}}  # every input: a checkbox
SCHEMES = {"http", "https", "mailto"}
STYLES = {"text-align"}
CACHE_SIZE = 10_000


def _link_references(state: StateCore) -> None:
    """Turn `#123` and `@login` in text into links (not in code, not inside a link)."""
    base = state.env.get("project_path", "")
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        depth = 0
        for token in block.children:
            if token.type == "link_open":
                depth += 1
            elif token.type == "link_close":
                depth -= 1
            if token.type != "text" or depth > 0 or not REFERENCE.search(token.content):
                children.append(token)
                continue
            children += _split(token.content, base)
        block.children = children


def _split(text: str, base: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    for found in REFERENCE.finditer(text):
        if found.start() > position:
            tokens.append(_text(text[position : found.start()]))
        if found.group("number") is not None:
            href, css = f"{base}/issues/{found.group('number')}", "issue-reference"
        else:
            href, css = f"/{found.group('login')}", "user-mention"
        opened = Token("link_open", "a", 1)
        opened.attrs = {"href": href, "class": css}
        tokens += [opened, _text(found.group(0)), Token("link_close", "a", -1)]
        position = found.end()
    if position < len(text):
        tokens.append(_text(text[position:]))
    return tokens


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


_parser = (
    MarkdownIt("commonmark", {"html": True, "linkify": False})
    .enable(["table", "strikethrough"])
    .use(tasklists_plugin)
)
_parser.core.ruler.push("link_references", _link_references)


def render(body: str, project_path: str) -> str:
    """The body as sanitized HTML; `#123` links to `{project_path}/issues/123`."""
    if not body:
        return ""
    html = _parser.render(body, {"project_path": project_path})
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        allowed_classes=CLASSES,
        tag_attribute_values=INPUT_VALUES,
        set_tag_attribute_values=FORCED,
        url_schemes=SCHEMES,
        filter_style_properties=STYLES,
        link_rel="nofollow noopener noreferrer",
    )


def absolute(html: str, public_url: str) -> str:
    """Stored HTML with the root-relative URLs of its links and images under `public_url`
    (only in tags: the sanitizer escapes `<` in text)."""
    origin = public_url.rstrip("/")
    return ROOT_RELATIVE.sub(lambda found: found.group(1) + origin + "/", html)


class Rendered:
    """Bodies rendered when read because none was stored (rows written before bodies were
    rendered when written, or whose project changed): kept by (row key, body version),
    least recently used first out, so that a body is rendered once per process."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._found: OrderedDict[Hashable, str] = OrderedDict()

    def get(self, key: Hashable, body: str, project_path: str) -> str:
        html = self._found.get(key)
        if html is None:
            html = self._found[key] = render(body, project_path)
            if len(self._found) > self._size:
                self._found.popitem(last=False)
        else:
            self._found.move_to_end(key)
        return html


RENDERED = Rendered()
