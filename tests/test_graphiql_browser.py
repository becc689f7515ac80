"""GraphiQL in a real headless browser (Debian's chromium, driven by playwright) against a
real server process: it loads from the server alone, runs a query, signs in with its tab
and keeps the token in the Headers tab, runs a subscription over the same origin's
WebSocket and shows the event a mutation causes, and never sends a stale operation name.

Skipped, saying how to install it, where chromium or playwright is missing (`.ci/run`
installs both); playwright never downloads a browser of its own here.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from server.graphiql import assets_available
from tests.servers import server_processes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000  # a bound against hanging, not a measurement

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is missing: pip install -e '.[dev]'"
)
if not shutil.which(CHROMIUM):
    pytest.skip(
        "chromium is missing: apt-get install -y chromium (Debian's package)",
        allow_module_level=True,
    )
if not assets_available():
    pytest.skip(
        "the GraphiQL assets are not installed: run scripts/fetch_graphiql.sh (needs npm)",
        allow_module_level=True,
    )

# CodeMirror instances of the page: the query, the variables, the headers, the response
EDITORS = """() => ({
  query: document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue(),
  headers: document.querySelectorAll('.graphiql-editor-tool .CodeMirror')[1].CodeMirror.getValue(),
  response: document.querySelector('.result-window .CodeMirror').CodeMirror.getValue(),
})"""
# Replace the query and run it at once, before GraphiQL has re-read the operation's name
RETYPE_AND_RUN = """(text) => {
  document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(text);
  document.querySelector('.graphiql-execute-button').click();
}"""


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with server_processes(1, database_url, BCRYPT_ROUNDS="4") as urls:
        yield urls[0]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Page:
    """A GraphiQL page, with every URL it requested (HTTP and WebSocket)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.urls: list[str] = []
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(message.text))
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda socket: self.urls.append(socket.url))

    async def editors(self) -> dict[str, str]:
        values: dict[str, str] = await self.page.evaluate(EDITORS)
        return values

    async def tab(self, title: str) -> None:
        await self.page.locator(".graphiql-tab", has_text=title).click()
        await self.page.wait_for_function(
            "(t) => document.querySelector('.graphiql-tab-active').innerText.trim() === t",
            arg=title,
        )

    async def run(self) -> None:
        await self.page.click(".graphiql-execute-button")

    async def response(self, contains: str) -> Any:
        """The response pane's JSON, once it holds `contains`."""
        await self.page.wait_for_function(
            """(text) => document.querySelector('.result-window .CodeMirror')
                 .CodeMirror.getValue().includes(text)""",
            arg=contains,
            timeout=WAIT_MS,
        )
        return json.loads((await self.editors())["response"])


async def test_graphiql_signs_in_queries_and_subscribes_from_its_own_origin(
    server: str, browser: Any
) -> None:
    context = await browser.new_context()
    page = Page(await context.new_page())
    await page.page.goto(f"{server}/graphql")
    await page.page.wait_for_selector(".graphiql-tab", timeout=WAIT_MS)
    assert await page.page.locator(".graphiql-tab").all_inner_texts() == [
        "Dashboard",
        "SignIn",
        "Me",
        "LiveEvents",
        "OpenIssue",
    ]

    # a query: the first tab's, as it opens
    await page.run()
    dashboard = await page.response('"Acme Inc."')
    assert dashboard["data"]["organization"]["projects"]["nodes"][0]["key"] == "WEB"

    # a query typed over the named one and run at once: its own name, not "Dashboard"
    await page.page.evaluate(RETYPE_AND_RUN, '{ organization(slug: "globex") { slug } }')
    assert await page.response('"globex"') == {
        "data": {"organization": {"slug": "globex"}},
        "extensions": page_cost(await page.editors()),
    }

    # the sign-in tab puts a working token in the Headers tab, here and in the next tabs
    await page.tab("SignIn")
    await page.run()
    signed_in = await page.response('"accessToken"')
    token = signed_in["data"]["logIn"]["tokens"]["accessToken"]
    assert json.loads((await page.editors())["headers"]) == {"Authorization": f"Bearer {token}"}
    await page.tab("Me")
    assert json.loads((await page.editors())["headers"]) == {"Authorization": f"Bearer {token}"}
    await page.run()
    me = await page.response('"login"')
    assert me["data"]["viewer"]["login"] == "alice"

    # a subscription over this origin's WebSocket shows the event a mutation causes
    await page.tab("LiveEvents")
    await page.run()
    title = await open_issues_until_one_shows(page, server, token)
    event = await page.response(title)
    assert event["data"]["issueEvents"]["kind"] == "OPENED"
    assert event["data"]["issueEvents"]["actor"] == {"login": "alice"}

    origin = urlsplit(server).netloc
    assert page.urls, "the page requested nothing?"
    off_origin = [
        url for url in page.urls if not url.startswith("data:") and urlsplit(url).netloc != origin
    ]
    assert off_origin == []
    assert any(url.startswith(f"ws://{origin}/graphql") for url in page.urls)
    assert not [m for m in page.console if "Content Security Policy" in m], page.console
    await context.close()


def page_cost(editors: dict[str, str]) -> Any:
    """The response's extensions as the server sent them (their figures vary)."""
    return json.loads(editors["response"])["extensions"]


async def open_issues_until_one_shows(page: Page, server: str, token: str) -> str:
    """Open issues in WEB until the subscription shows one (the first may commit before the
    subscription listens); the title that showed."""
    create = (
        "mutation($p: ID!, $t: String!) "
        "{ createIssue(input: {projectId: $p, title: $t}) { issue { number } } }"
    )
    project = project_id(server)
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        title = f"From the browser test {uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient() as http:
            sent = await http.post(
                f"{server}/graphql",
                json={"query": create, "variables": {"p": project, "t": title}},
                headers={"Authorization": f"Bearer {token}"},
            )
        answer = sent.json()
        assert answer["data"]["createIssue"]["issue"], answer
        try:
            await page.page.wait_for_function(
                """(text) => document.querySelector('.result-window .CodeMirror')
                     .CodeMirror.getValue().includes(text)""",
                arg=title,
                timeout=2_000,
            )
        except playwright_api.TimeoutError:
            continue
        return title
    raise AssertionError("no event reached the subscription")


def project_id(server: str) -> str:
    query = '{ organization(slug: "acme") { project(key: "WEB") { id } } }'
    body = httpx.post(f"{server}/graphql", json={"query": query}).json()
    return str(body["data"]["organization"]["project"]["id"])
