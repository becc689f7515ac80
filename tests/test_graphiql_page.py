"""The GraphiQL page: embedded values are escaped, assets are local or pinned CDN URLs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse, validate

from resolvers.schema import schema
from server import graphiql

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fetch_graphiql.sh"


@pytest.fixture
def local_assets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphiql, "assets_available", lambda: True)


@pytest.fixture
def cdn_assets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphiql, "assets_available", lambda: False)
    monkeypatch.setattr(graphiql, "_cdn_warning_logged", False)


def inline_script(page: str) -> str:
    """The text of the page's one inline <script>, as an HTML parser would end it."""
    start = page.index("<script>") + len("<script>")
    return page[start : page.index("</script>", start)]


def embedded_config(page: str) -> dict[str, str]:
    match = re.search(r"var config = (.*);\n", inline_script(page))
    assert match is not None
    config: dict[str, str] = json.loads(match.group(1))
    return config


def test_example_tabs_and_endpoint_are_embedded(local_assets: None) -> None:
    page = graphiql.render_graphiql("/graphql")
    config = embedded_config(page)
    assert config["endpoint"] == "/graphql"
    assert config["headers"] == "{}"
    assert [tab["query"] for tab in config["tabs"]] == [q for q, _p in graphiql.TABS]
    assert config["tabs"][0]["query"].startswith(
        "# Welcome to issuegraph. Press ▶ to run this query."
    )
    assert "<title>issuegraph — GraphiQL</title>" in page
    assert "subscriptionUrl: socket + config.endpoint" in page
    assert "defaultTabs: tabs" in page


def test_each_example_tab_is_one_valid_operation_of_its_own_name() -> None:
    names = []
    for query, takes_project in graphiql.TABS:
        document = parse(query)
        assert validate(schema._schema, document) == [], query
        (operation,) = document.definitions
        assert isinstance(operation, OperationDefinitionNode) and operation.name is not None
        names.append(operation.name.value)
        variables = [v.variable.name.value for v in operation.variable_definitions or ()]
        assert variables == (["projectId"] if takes_project else [])
    assert len(set(names)) == len(names)
    assert parse(graphiql.DEMO_PROJECT_QUERY)


@pytest.mark.parametrize(
    "endpoint",
    [
        "/graphql</script><script>alert(1)</script>",
        "/graphql</SCRIPT >",
        "/graphql<!--<script>",
        '/graphql"};alert(1);//',
        "/graphql\u2028\u2029&amp;",
    ],
)
def test_endpoint_cannot_break_out_of_the_script(local_assets: None, endpoint: str) -> None:
    page = graphiql.render_graphiql(endpoint)
    script = inline_script(page)
    assert "<" not in script.split("var config = ", 1)[1].split(";\n", 1)[0]
    assert "</script" not in script.lower()
    assert "<!--" not in script
    assert embedded_config(page)["endpoint"] == endpoint
    # The page still ends as written: nothing was closed early.
    assert page.count("</script>") == 1 + sum(
        1 for asset in graphiql.ASSETS if asset.filename.endswith(".js")
    )
    assert page.rstrip().endswith("</html>")


def test_local_assets_are_used_when_installed(
    local_assets: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=graphiql.__name__):
        page = graphiql.render_graphiql("/graphql")
    assert '<link rel="stylesheet" href="/static/graphiql/graphiql.min.css">' in page
    for name in ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js"):
        assert f'<script src="/static/graphiql/{name}"></script>' in page
    assert "unpkg.com" not in page
    assert "http" not in page.split("<script>", 1)[0].split("<title>", 1)[1]
    assert caplog.records == []


def test_static_prefix_is_used_and_escaped(local_assets: None) -> None:
    page = graphiql.render_graphiql("/graphql", static_prefix='/ui/"assets"/')
    assert 'src="/ui/&quot;assets&quot;/graphiql.min.js"' in page
    assert '"assets"/' not in page


def test_scripts_load_in_dependency_order(local_assets: None) -> None:
    page = graphiql.render_graphiql("/graphql")
    positions = [
        page.index(name)
        for name in (
            "graphiql.min.css",
            "react.production.min.js",
            "react-dom.production.min.js",
            "graphiql.min.js",
            "<script>",
        )
    ]
    assert positions == sorted(positions)


def test_cdn_fallback_uses_pinned_versions(cdn_assets: None) -> None:
    page = graphiql.render_graphiql("/graphql")
    v = graphiql
    for url in (
        f"https://unpkg.com/react@{v.REACT_VERSION}/umd/react.production.min.js",
        f"https://unpkg.com/react-dom@{v.REACT_DOM_VERSION}/umd/react-dom.production.min.js",
        f"https://unpkg.com/graphiql@{v.GRAPHIQL_VERSION}/graphiql.min.js",
        f"https://unpkg.com/graphiql@{v.GRAPHIQL_VERSION}/graphiql.min.css",
    ):
        assert f'"{url}"' in page
    assert "/static/graphiql" not in page
    assert page.count('crossorigin="anonymous"') == 4
    for asset in graphiql.ASSETS:
        assert f'integrity="{asset.integrity}"' in page
    assert embedded_config(page)["tabs"][0]["query"] == graphiql.EXAMPLE_QUERY


def test_cdn_fallback_logs_a_warning_once(
    cdn_assets: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=graphiql.__name__):
        graphiql.render_graphiql("/graphql")
        graphiql.render_graphiql("/graphql")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "not installed" in message
    assert "CDN" in message
    assert graphiql.GRAPHIQL_VERSION in message


def test_assets_available_checks_files_and_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graphiql, "STATIC_DIR", tmp_path)
    assert not graphiql.assets_available()
    for asset in graphiql.ASSETS:
        (tmp_path / asset.filename).write_text("x")
    assert not graphiql.assets_available()  # no VERSIONS
    pins = "\n".join(
        f"{asset.package}@{asset.version} {asset.filename}"
        for asset in graphiql.ASSETS
        if asset is not graphiql.GRAPHIQL_CSS
    )
    (tmp_path / "VERSIONS").write_text("# comment\n" + pins + "\n")
    assert graphiql.assets_available()
    (tmp_path / "VERSIONS").write_text(pins.replace(graphiql.GRAPHIQL_VERSION, "3.0.0"))
    assert not graphiql.assets_available()  # stale: the pins changed since the fetch
    (tmp_path / "VERSIONS").write_text(pins)
    (tmp_path / "graphiql.min.css").unlink()
    assert not graphiql.assets_available()


def test_static_dir_is_next_to_the_module() -> None:
    assert Path(graphiql.__file__).resolve().parent / "static" / "graphiql" == graphiql.STATIC_DIR


def test_fetch_script_pins_the_same_versions() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    for variable, version in (
        ("GRAPHIQL_VERSION", graphiql.GRAPHIQL_VERSION),
        ("REACT_VERSION", graphiql.REACT_VERSION),
        ("REACT_DOM_VERSION", graphiql.REACT_DOM_VERSION),
    ):
        assert re.search(rf'^{variable}="{re.escape(version)}"$', script, re.MULTILINE), variable


@pytest.mark.skipif(not graphiql.assets_available(), reason="run scripts/fetch_graphiql.sh")
def test_installed_files_match_the_cdn_integrity_hashes() -> None:
    for asset in graphiql.ASSETS:
        digest = hashlib.sha384((graphiql.STATIC_DIR / asset.filename).read_bytes()).digest()
        assert f"sha384-{base64.b64encode(digest).decode()}" == asset.integrity, asset.filename


def test_the_policy_lets_the_page_reach_its_own_origin_only(local_assets: None) -> None:
    policy = graphiql.content_security_policy("n0nce")
    assert "default-src 'none'" in policy
    assert "script-src 'self' 'nonce-n0nce';" in policy
    assert "connect-src 'self';" in policy
    assert "unpkg" not in policy
    page = graphiql.render_graphiql("/graphql", nonce="n0nce")
    assert '<script nonce="n0nce">' in page


def test_the_policy_allows_the_cdn_only_when_it_serves_the_assets(cdn_assets: None) -> None:
    policy = graphiql.content_security_policy("n0nce")
    assert f"script-src 'self' 'nonce-n0nce' {graphiql.CDN_BASE};" in policy


async def test_the_page_is_served_with_its_policy_and_a_fresh_nonce(client: Any) -> None:
    nonces = []
    for _ in range(2):
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html")
        match = re.search(r'<script nonce="([^"]+)">', page.text)
        assert match is not None
        nonces.append(match.group(1))
        assert f"'nonce-{match.group(1)}'" in page.headers["content-security-policy"]
    assert nonces[0] != nonces[1]
