"""The GraphiQL page: an in-browser IDE for the API, served without internet access.

The page opens with example tabs (a dashboard query, signing in, the viewer, live events,
opening an issue). Its fetcher runs subscriptions over the same origin's WebSocket
(graphql-transport-ws, the Headers tab as connection_init's payload), takes the operation
name from the text it sends (never a stale one), and after a sign-in puts
`Authorization: Bearer <token>` in the Headers tab of each tab. The page's own requests
all go to its origin: the assets below, the endpoint, its WebSocket.

Its JavaScript and CSS are third-party code, so they are not committed: `make` runs
`scripts/fetch_graphiql.sh`, which installs the pinned versions below with npm and copies
the four browser files into `server/static/graphiql/` (git-ignored), served by our own server
under `/static/graphiql`. When they are missing (no npm, or the install failed) the page
loads the same pinned versions from the unpkg CDN instead, and a warning says so.

The pins must match the ones in `scripts/fetch_graphiql.sh` (a test checks it).
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Final, NamedTuple

log = logging.getLogger(__name__)

STATIC_DIR: Final[Path] = Path(__file__).resolve().parent / "static" / "graphiql"
"""Where `scripts/fetch_graphiql.sh` puts the assets; mount it at `/static/graphiql`."""

GRAPHIQL_VERSION: Final = "3.8.3"
REACT_VERSION: Final = "18.3.1"
REACT_DOM_VERSION: Final = "18.3.1"

CDN_BASE: Final = "https://unpkg.com"

TITLE: Final = "issuegraph — GraphiQL"


class Asset(NamedTuple):
    """One browser file of the page."""

    package: str
    version: str
    path: str
    """Path inside the npm package (what unpkg serves)."""
    integrity: str
    """Subresource Integrity hash of the file, checked by the browser on the CDN fallback."""

    @property
    def filename(self) -> str:
        """Name of the file in `STATIC_DIR`."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def cdn_url(self) -> str:
        return f"{CDN_BASE}/{self.package}@{self.version}/{self.path}"


REACT: Final = Asset(
    "react",
    REACT_VERSION,
    "umd/react.production.min.js",
    "sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z",
)
REACT_DOM: Final = Asset(
    "react-dom",
    REACT_DOM_VERSION,
    "umd/react-dom.production.min.js",
    "sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1",
)
GRAPHIQL_JS: Final = Asset(
    "graphiql",
    GRAPHIQL_VERSION,
    "graphiql.min.js",
    "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
)
GRAPHIQL_CSS: Final = Asset(
    "graphiql",
    GRAPHIQL_VERSION,
    "graphiql.min.css",
    "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
)
ASSETS: Final[tuple[Asset, ...]] = (REACT, REACT_DOM, GRAPHIQL_JS, GRAPHIQL_CSS)

EXAMPLE_QUERY: Final = """\
# Welcome to issuegraph. Press ▶ to run this query.
# The next tabs sign in (the token goes into the
# Headers tab), ask who you are, and show live events.
query Dashboard {
  organization(slug: "acme") {
    name
    projects(first: 5) {
      totalCount
      nodes {
        id
        key
        name
        issues(first: 3, orderBy: {field: CREATED_AT, direction: DESC}) {
          nodes {
            number
            title
            state
            author { login }
            labels(first: 3) { nodes { name color } }
          }
          pageInfo { hasNextPage endCursor }
        }
      }
    }
  }
}
"""

SIGN_IN: Final = """\
# Sign in as a demo user (alice, bob, carol, root:
# the README lists their passwords). The page puts
# the access token in the Headers tab of this tab
# and of each tab you open next, as
#   {"Authorization": "Bearer …"}
# It lasts 15 minutes: run this again for a new one.
mutation SignIn {
  logIn(input: {login: "alice", password: "alice-in-acme"}) {
    viewer { login name }
    tokens { accessToken refreshToken }
    userErrors { message code }
  }
}
"""

VIEWER: Final = """\
# Who am I? Null until you sign in (the "Sign in" tab).
query Me {
  viewer {
    login
    name
    organizations(first: 5) { nodes { slug name } }
    sessions(first: 5) { nodes { createdAt client isCurrent } }
  }
}
"""

LIVE_EVENTS: Final = """\
# Live updates over WebSocket (graphql-transport-ws).
# Run this, then run the OpenIssue tab (signed in):
# each change to the project's issues arrives here.
# The project's id is in Variables (Dashboard lists
# the others).
subscription LiveEvents($projectId: ID!) {
  issueEvents(projectId: $projectId) {
    kind
    createdAt
    issue { number title state }
    actor { login }
  }
}
"""

OPEN_ISSUE: Final = """\
# Open an issue (sign in first, as a member of the
# project's organization). A running LiveEvents tab
# shows it arrive.
mutation OpenIssue($projectId: ID!) {
  createIssue(input: {projectId: $projectId, title: "Opened from GraphiQL"}) {
    issue { number title author { login } }
    userErrors { message code }
  }
}
"""

DEMO_PROJECT_QUERY: Final = '{ organization(slug: "acme") { project(key: "WEB") { id } } }'
"""Looked up when the page opens, to fill in the project id of the tabs that take one."""

PROJECT_PLACEHOLDER: Final = "a project's id: the Dashboard tab lists them"

TABS: Final[tuple[tuple[str, bool], ...]] = (
    (EXAMPLE_QUERY, False),
    (SIGN_IN, False),
    (VIEWER, False),
    (LIVE_EVENTS, True),
    (OPEN_ISSUE, True),
)
"""The example tabs: each one's document, and whether it takes `$projectId`."""

DEFAULT_HEADERS: Final = "{}"

_cdn_warning_logged = False


def _pinned_packages() -> set[str]:
    return {f"{asset.package}@{asset.version}" for asset in ASSETS}


def assets_available() -> bool:
    """Whether `scripts/fetch_graphiql.sh` installed the pinned versions in `STATIC_DIR`.

    True only when every file is there and `VERSIONS` lists exactly the pinned versions, so
    that stale assets (the pins changed, the script did not run again) are not served.
    """
    try:
        lines = (STATIC_DIR / "VERSIONS").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    listed = {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}
    if listed != _pinned_packages():
        return False
    return all((STATIC_DIR / asset.filename).is_file() for asset in ASSETS)


def _script_json(value: object) -> str:
    """`value` as JSON that is safe inside an inline <script> element.

    `<`, `>` and `&` become \\u escapes (valid in JSON and JavaScript strings), so no value
    can close the script (`</script>`) or open an HTML comment (`<!--`); `ensure_ascii`
    escapes U+2028/U+2029 too.
    """
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _warn_cdn_once() -> None:
    global _cdn_warning_logged
    if _cdn_warning_logged:
        return
    _cdn_warning_logged = True
    log.warning(
        "GraphiQL assets were not installed in %s (run scripts/fetch_graphiql.sh, which needs "
        "npm); the GraphiQL page falls back to the %s CDN (graphiql %s, react %s, react-dom %s), "
        "so it needs internet access in the browser",
        STATIC_DIR,
        CDN_BASE,
        GRAPHIQL_VERSION,
        REACT_VERSION,
        REACT_DOM_VERSION,
    )


def _asset_tags(static_prefix: str) -> str:
    def attr(value: str) -> str:
        return html.escape(value, quote=True)

    tags: list[str] = []
    if assets_available():
        prefix = static_prefix.rstrip("/")
        for asset in ASSETS:
            url = attr(f"{prefix}/{asset.filename}")
            if asset.filename.endswith(".css"):
                tags.append(f'<link rel="stylesheet" href="{url}">')
            else:
                tags.append(f'<script src="{url}"></script>')
    else:
        _warn_cdn_once()
        for asset in ASSETS:
            url = attr(asset.cdn_url)
            sri = f'integrity="{attr(asset.integrity)}" crossorigin="anonymous"'
            if asset.filename.endswith(".css"):
                tags.append(f'<link rel="stylesheet" href="{url}" {sri}>')
            else:
                tags.append(f'<script src="{url}" {sri}></script>')
    # The stylesheet first, then React, ReactDOM and GraphiQL (which needs both).
    tags.sort(key=lambda tag: not tag.startswith("<link"))
    return "\n    ".join(tags)


_PAGE: Final = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="robots" content="noindex">
    <link rel="icon" href="data:,">
    <title>{title}</title>
    <style>
      html, body {{ height: 100%; margin: 0; }}
      #graphiql {{ height: 100vh; }}
    </style>
    {assets}
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script{nonce}>
      (function () {{
        "use strict";
        var config = {config};
        var GQL = GraphiQL.GraphQL;
        var socket = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
        // Subscriptions go over this origin's WebSocket, with the Headers tab's headers as
        // connection_init's payload; everything else is a POST.
        var transport = GraphiQL.createFetcher({{
          url: config.endpoint,
          subscriptionUrl: socket + config.endpoint,
          enableIncrementalDelivery: false,
        }});
        var signedIn = {{ token: null, listener: null }};

        // GraphiQL reads the operation name and the parsed document of the query editor a
        // moment after each keystroke: a query run just after it was typed would carry the
        // previous one's name ("No operation named …"). Both are taken from the text sent.
        function fetcher(params, options) {{
          var document = null;
          try {{ document = GQL.parse(params.query); }} catch (error) {{ document = null; }}
          if (document) {{
            var names = document.definitions
              .filter(function (d) {{ return d.kind === "OperationDefinition"; }})
              .map(function (d) {{ return d.name ? d.name.value : null; }});
            var name = params.operationName;
            if (name && names.indexOf(name) < 0) {{
              name = names.length === 1 && names[0] ? names[0] : undefined;
            }}
            params = Object.assign({{}}, params, {{ operationName: name }});
            options = Object.assign({{}}, options, {{ documentAST: document }});
          }}
          return Promise.resolve(transport(params, options)).then(function (result) {{
            var token = accessToken(result);
            if (token) {{
              signedIn.token = token;
              if (signedIn.listener) signedIn.listener(token);
            }}
            return result;
          }});
        }}

        // The access token of a sign-in (logIn, signUp, refreshToken) in a result, if any.
        function accessToken(result) {{
          var data = result && typeof result === "object" && result.data;
          if (!data || typeof data !== "object") return null;
          for (var key in data) {{
            var tokens = data[key] && data[key].tokens;
            if (tokens && typeof tokens.accessToken === "string") return tokens.accessToken;
          }}
          return null;
        }}

        // Keeps `Authorization: Bearer <token>` of the last sign-in in the Headers tab of
        // the open tab (and of each tab opened next), leaving other headers as they are.
        function SignedIn() {{
          var editors = GraphiQL.React.useEditorContext({{ nonNull: true }});
          var state = React.useState(signedIn.token);
          var token = state[0];
          React.useEffect(function () {{
            signedIn.listener = state[1];
            return function () {{ signedIn.listener = null; }};
          }}, []);
          React.useEffect(function () {{
            var editor = editors.headerEditor;
            if (!token || !editor) return;
            var headers;
            try {{ headers = JSON.parse(editor.getValue() || "{{}}"); }} catch (e) {{ return; }}
            if (!headers || typeof headers !== "object" || Array.isArray(headers)) return;
            if (headers.Authorization === "Bearer " + token) return;
            headers.Authorization = "Bearer " + token;
            editor.setValue(JSON.stringify(headers, null, 2));
          }}, [token, editors.headerEditor, editors.activeTabIndex]);
          return null;
        }}

        function render(projectId) {{
          var tabs = config.tabs.map(function (tab) {{
            var variables = tab.project
              ? JSON.stringify({{ projectId: projectId || config.placeholder }}, null, 2)
              : undefined;
            return {{ query: tab.query, variables: variables, headers: config.headers }};
          }});
          ReactDOM.createRoot(document.getElementById("graphiql")).render(
            React.createElement(GraphiQL, {{
              fetcher: fetcher,
              defaultTabs: tabs,
              defaultHeaders: config.headers,
              defaultEditorToolsVisibility: "variables",
              toolbar: {{ additionalComponent: SignedIn }},
            }})
          );
        }}

        // The demo project's id, for the tabs that take one (absent outside the demo data).
        fetch(config.endpoint, {{
          method: "POST",
          headers: {{ "content-type": "application/json" }},
          body: JSON.stringify({{ query: config.project }}),
        }})
          .then(function (response) {{ return response.json(); }})
          .then(function (body) {{
            var project = body.data && body.data.organization && body.data.organization.project;
            render(project ? project.id : null);
          }})
          .catch(function () {{ render(null); }});
      }})();
    </script>
  </body>
</html>
"""


def render_graphiql(
    endpoint: str, static_prefix: str = "/static/graphiql", nonce: str | None = None
) -> str:
    """The full HTML page of GraphiQL, querying `endpoint` (a URL, relative or absolute).

    Assets come from `static_prefix` (where `STATIC_DIR` is mounted) when installed, else
    from the CDN, logging a warning once per process. Serve the page as
    `text/html; charset=utf-8`, with `content_security_policy(nonce)` when a nonce is given
    (it marks the page's inline script as the page's own).
    """
    config = {
        "endpoint": endpoint,
        "tabs": [{"query": query, "project": project} for query, project in TABS],
        "headers": DEFAULT_HEADERS,
        "project": DEMO_PROJECT_QUERY,
        "placeholder": PROJECT_PLACEHOLDER,
    }
    return _PAGE.format(
        title=html.escape(TITLE),
        assets=_asset_tags(static_prefix),
        config=_script_json(config),
        nonce=f' nonce="{html.escape(nonce, quote=True)}"' if nonce else "",
    )


def content_security_policy(nonce: str) -> str:
    """What the page may load and where it may connect: its own origin only (and the CDN's
    pinned files when the assets are not installed), so a browser enforces what the page
    promises, and an injected script could neither run nor send anything elsewhere."""
    cdn = "" if assets_available() else f" {CDN_BASE}"
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' 'nonce-{nonce}'{cdn}",
            f"style-src 'self' 'unsafe-inline'{cdn}",  # CodeMirror and GraphiQL set styles
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",  # the endpoint, and its WebSocket on the same origin
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
