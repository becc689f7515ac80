"""The GraphiQL page: an in-browser IDE for the API, served without internet access.

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
# Welcome to issuegraph. Press the ▶ button to run this query.
# Signed-in requests send a header (see the Headers tab below):
#   {"Authorization": "Bearer <access token from the logIn mutation>"}
query Dashboard {
  organization(slug: "acme") {
    name
    projects(first: 5) {
      totalCount
      nodes {
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
    <title>{title}</title>
    <style>
      html, body {{ height: 100%; margin: 0; }}
      #graphiql {{ height: 100vh; }}
    </style>
    {assets}
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script>
      (function () {{
        "use strict";
        var config = {config};
        var root = ReactDOM.createRoot(document.getElementById("graphiql"));
        root.render(
          React.createElement(GraphiQL, {{
            fetcher: GraphiQL.createFetcher({{ url: config.endpoint }}),
            defaultQuery: config.query,
            defaultHeaders: config.headers,
            defaultEditorToolsVisibility: "headers",
          }})
        );
      }})();
    </script>
  </body>
</html>
"""


def render_graphiql(endpoint: str, static_prefix: str = "/static/graphiql") -> str:
    """The full HTML page of GraphiQL, querying `endpoint` (a URL, relative or absolute).

    Assets come from `static_prefix` (where `STATIC_DIR` is mounted) when installed, else
    from the CDN, logging a warning once per process. Serve the page as
    `text/html; charset=utf-8`.
    """
    config = {"endpoint": endpoint, "query": EXAMPLE_QUERY, "headers": DEFAULT_HEADERS}
    return _PAGE.format(
        title=html.escape(TITLE),
        assets=_asset_tags(static_prefix),
        config=_script_json(config),
    )
