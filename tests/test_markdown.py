"""bodyHTML: Markdown rendered, references linked, and nothing a browser would execute."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from domain.markdown import TAGS, absolute, render
from tests.conftest import Run

# Known script-injection payloads (OWASP's XSS filter evasion cheat sheet, PortSwigger's
# XSS cheat sheet, HTML5 Security Cheatsheet), raw and wrapped in Markdown.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://xss.example/xss.js></SCRIPT>",
    "<script/xss src=https://xss.example/x.js></script>",
    "<<SCRIPT>alert('XSS');//\\<</SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=javascript:alert('XSS')>",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    '<IMG """><SCRIPT>alert("XSS")</SCRIPT>"\\>',
    "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    "<IMG SRC= onmouseover=\"alert('xxs')\">",
    "<IMG onmouseover=\"alert('xxs')\">",
    '<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>',
    "<img src=x onerror=&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114>",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    '<SCRIPT/XSS SRC="http://xss.example/xss.js"></SCRIPT>',
    '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("XSS")>',
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">XSS</text></a></svg>',
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    "<iframe srcdoc='&lt;script&gt;alert(1)&lt;/script&gt;'></iframe>",
    '<object data="javascript:alert(1)"></object>',
    '<embed src="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">',
    '<form action="javascript:alert(1)"><button>go</button></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    '<input onfocus=alert(1) autofocus type="text">',
    '<details open ontoggle="alert(1)">',
    "<marquee onstart=alert(1)>",
    '<div style="background-image: url(javascript:alert(1))">x</div>',
    '<div style="width: expression(alert(1));">x</div>',
    "<STYLE>@import'http://xss.example/xss.css';</STYLE>",
    '<LINK REL="stylesheet" HREF="javascript:alert(\'XSS\');">',
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">',
    "<BASE HREF=\"javascript:alert('XSS');//\">",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="&#106;avascript:alert(1)">click</a>',
    '<a href=" javascript:alert(1)">click</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<a href="data:text/html,<script>alert(1)</script>">click</a>',
    '<a href="#" onclick="alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](javascript&#58;alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:alert(1))",
    '[a](https://x.example "title" onclick=alert(1))',
    "![img](javascript:alert(1))",
    '![x](https://x.example/a.png"onerror="alert(1))',
    "<javascript:alert(1)>",
    "[x]: javascript:alert(1)\n\n[click][x]",
    "```html\n<script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    "**<img src=x onerror=alert(1)>**",
    "> <script>alert(1)</script>",
    "- [ ] <img src=x onerror=alert(1)>",
    "| a |\n|---|\n| <script>alert(1)</script> |",
    "~~<svg onload=alert(1)>~~",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<template><script>alert(1)</script></template>",
    '<!--<img src="--><img src=x onerror=alert(1)//">',
    '<a href="\x0bjavascript:alert(1)">x</a>',
    '<a href="\\x0Bjavascript:alert(1)">x</a>',
    '<a href="java\0script:alert(1)">x</a>',
    "<img src=x:alert(alt) onerror=eval(src) alt=0>",
    '#1 <a href="#1" onmouseover="alert(1)">@alice</a>',
    "@alice<script>alert(1)</script>#2",
]
EXECUTABLE_TAGS = {
    "script", "iframe", "object", "embed", "form", "button", "style", "link", "meta",
    "base", "svg", "math", "frame", "frameset", "template", "noscript", "textarea",
    "select", "applet", "audio", "video", "source", "marquee", "body", "html",
}  # fmt: skip
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc"}
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
SAFE_SCHEMES = {"http", "https", "mailto"}


def _unsafe_url(value: str) -> bool:
    """Whether a browser would read the URL with a scheme other than http(s) or mailto
    (as the URL standard parses it: C0 controls and spaces trimmed, tabs and newlines
    removed; what has no scheme is relative)."""
    text = html.unescape(value).strip("".join(map(chr, range(0x21))))
    text = re.sub(r"[\t\n\r]", "", text)
    found = SCHEME.match(text)
    return found is not None and found.group(1).lower() not in SAFE_SCHEMES


class Audit(HTMLParser):
    """Everything a browser could run in a fragment of HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in EXECUTABLE_TAGS or tag not in TAGS:
            self.found.append(f"tag <{tag}>")
        for name, value in attrs:
            text = re.sub(r"[\x00-\x20]", "", html.unescape(value or ""))
            if name.startswith("on"):
                self.found.append(f"handler {name}")
            elif name in URL_ATTRIBUTES and _unsafe_url(value or ""):
                self.found.append(f"url {name}={value}")
            elif name == "style" and not re.fullmatch(r"text-align:\s*(left|right|center);?", text):
                self.found.append(f"style {value}")
            elif tag == "input" and name == "type" and value != "checkbox":
                self.found.append(f"input type {value}")


def _audit(rendered: str) -> list[str]:
    audit = Audit()
    audit.feed(rendered)
    audit.close()
    return audit.found


def test_the_corpus_is_large() -> None:
    assert len(set(PAYLOADS)) >= 70


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_renders_to_executable_html(payload: str) -> None:
    rendered = absolute(render(payload, "/acme/WEB"), "https://issues.example")
    assert _audit(rendered) == [], rendered
    assert "<script" not in rendered.lower()


def test_the_audit_sees_what_it_must() -> None:  # the test above can fail
    assert _audit('<img src=x onerror="alert(1)">') == ["handler onerror"]
    assert _audit('<a href="jav&#x09;ascript:alert(1)">x</a>') != []
    assert _audit("<script>alert(1)</script>") == ["tag <script>"]


def test_markdown_renders_github_flavoured() -> None:
    body = "# Title\n\n- [x] done\n- [ ] todo\n\n| a | b |\n|:--|--|\n| 1 | 2 |\n\n~~gone~~ **b**"
    rendered = render(body, "/acme/WEB")
    assert "<h1>Title</h1>" in rendered
    boxes = re.findall(r"<input [^>]*>", rendered)
    assert len(boxes) == 2 and all('type="checkbox"' in b and "disabled" in b for b in boxes)
    assert 'checked="checked"' in boxes[0] and "checked" not in boxes[1]
    assert '<th style="text-align:left">a</th>' in rendered
    assert "<s>gone</s>" in rendered and "<strong>b</strong>" in rendered


def test_references_link_except_in_code_links_and_emails() -> None:
    rendered = absolute(
        render("See #12 and @alice, `#3`, [#4](https://x.example), bob@mail.example, a#5",
               "/acme/WEB"),
        "https://issues.example/",
    )  # fmt: skip
    assert '<a href="https://issues.example/acme/WEB/issues/12" class="issue-reference"' in rendered
    assert '<a href="https://issues.example/alice" class="user-mention"' in rendered
    assert "<code>#3</code>" in rendered
    assert "issues/4" not in rendered and "issues/5" not in rendered
    assert "/mail" not in rendered


ISSUE_HTML = """
query($org: String!, $key: String!) { organization(slug: $org) { project(key: $key) {
  issues(first: 5) { nodes { identifier url bodyHTML
    comments(first: 5) { nodes { bodyHTML } } } } } } }
"""
CREATE = """
mutation($project: ID!, $body: String!) {
  createIssue(input: {projectId: $project, title: "Rendered", body: $body}) {
    issue { identifier url bodyHTML } userErrors { message } } }
"""


async def test_issues_and_comments_serve_their_html_identifier_and_url(run: Run, make: Any) -> None:
    user = await make.user(login="md-author")
    org = await make.organization(slug="md-org")
    await make.member(org, user)
    project = await make.project(org, key="MD")
    issue = await make.issue(project, user, body="Fix **#1** for @md-author <img onerror=x>")
    await make.comment(issue, user, body="- [x] see #1")

    outcome = await run(ISSUE_HTML, {"org": "md-org", "key": "MD"})

    assert outcome.errors == []
    [node] = outcome.data["organization"]["project"]["issues"]["nodes"]
    assert node["identifier"] == "MD-1"
    assert node["url"] == "http://127.0.0.1:8000/md-org/MD/issues/1"
    assert node["bodyHTML"] == (
        '<p>Fix <strong><a href="http://127.0.0.1:8000/md-org/MD/issues/1" '
        'class="issue-reference" rel="nofollow noopener noreferrer">#1</a></strong> for '
        '<a href="http://127.0.0.1:8000/md-author" class="user-mention" '
        'rel="nofollow noopener noreferrer">@md-author</a> <img></p>\n'
    )
    [comment] = node["comments"]["nodes"]
    assert (
        'checked="checked"' in comment["bodyHTML"] and "/md-org/MD/issues/1" in comment["bodyHTML"]
    )


async def test_a_body_is_rendered_when_written_and_stored(run: Run, make: Any) -> None:
    from execution.ids import encode_id

    user = await make.user(login="md-writer")
    org = await make.organization(slug="md-writes")
    await make.member(org, user)
    project = await make.project(org, key="MW")
    outcome = await run(
        CREATE,
        {"project": encode_id("Project", project), "body": "hello @md-writer"},
        viewer="md-writer",
    )
    assert outcome.errors == []
    issue = outcome.data["createIssue"]["issue"]
    assert issue["identifier"] == "MW-1"
    stored = await make.conn.fetchval("SELECT body_html FROM issues WHERE project_id = $1", project)
    assert stored == (
        '<p>hello <a href="/md-writer" class="user-mention" '
        'rel="nofollow noopener noreferrer">@md-writer</a></p>\n'
    )
    assert issue["bodyHTML"] == absolute(stored, "http://127.0.0.1:8000")
