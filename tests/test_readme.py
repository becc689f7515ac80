"""README.md stays true: its examples run against a real server process, and its table of
error codes is the one `core/errors.py` defines.

The convention, written at the top of README.md too: every fenced block tagged `sh` or
`graphql` is an example. `sh` blocks run in order in one bash (a variable one sets is there
for the next), with http://127.0.0.1:8000 pointing at the server under test; each must exit 0
and print only JSON answers without `errors`. `graphql` blocks are validated against the
schema and, except subscriptions, sent over HTTP and must answer without `errors`. Words
after the tag: `norun` leaves a block out, `as=LOGIN` signs a `graphql` block in as that demo
user.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import OperationType, parse, validate

from core import errors
from core.seed import DEMO_USERS
from resolvers.payloads import UserErrorCode
from resolvers.schema import schema
from tests.servers import server_processes

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_ORIGIN = "http://127.0.0.1:8000"
EXAMPLE_LANGUAGES = ("sh", "graphql")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
SHELL_SECONDS = 60


@dataclass(frozen=True)
class Block:
    language: str
    options: tuple[str, ...]
    text: str
    line: int

    @property
    def runs(self) -> bool:
        return self.language in EXAMPLE_LANGUAGES and "norun" not in self.options

    def option(self, name: str) -> str | None:
        for option in self.options:
            key, _, value = option.partition("=")
            if key == name:
                return value
        return None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.language})"


def blocks(text: str) -> list[Block]:
    found = []
    for match in FENCE.finditer(text):
        language, *options = match.group(1).split() or [""]
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(language, tuple(options), match.group(2), line))
    return found


def examples(language: str) -> list[Block]:
    return [
        b for b in blocks(README.read_text(encoding="utf-8")) if b.runs and b.language == language
    ]


def json_values(text: str) -> Iterator[Any]:
    """Each JSON value in `text`, one after the other (curl prints bodies back to back)."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return
        value, position = decoder.raw_decode(text, position)
        yield value


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with server_processes(1, database_url, BCRYPT_ROUNDS="4") as urls:
        yield urls[0]


def test_the_readme_has_examples_of_each_kind() -> None:
    shell = examples("sh")
    assert len(shell) >= 3
    assert any("Authorization: Bearer" in b.text for b in shell), "a signed-in curl example"
    assert any("logIn" in b.text for b in shell), "a curl example of signing in"
    assert examples("graphql")


def test_the_shell_examples_run(server: str) -> None:
    shell = examples("sh")
    script = ["set -euo pipefail"]
    for index, block in enumerate(shell):
        script += [
            f"printf '\\n@@example {index}@@\\n'",
            block.text.replace(EXAMPLE_ORIGIN, server),
        ]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        capture_output=True,
        text=True,
        timeout=SHELL_SECONDS,
    )
    outputs = re.split(r"\n@@example (\d+)@@\n", done.stdout)[1:]
    printed = {int(outputs[i]): outputs[i + 1] for i in range(0, len(outputs), 2)}
    for index, block in enumerate(shell):
        assert index in printed, f"{block} did not run: {done.stderr}"
        answers = list(json_values(printed[index]))
        assert answers, f"{block} printed no answer: {done.stderr}"
        for answer in answers:
            assert "errors" not in answer, f"{block} answered errors: {answer}"
            assert answer.get("data"), f"{block} answered no data: {answer}"
    assert done.returncode == 0, done.stderr


def test_the_graphql_examples_run(server: str) -> None:
    passwords = {login: password for login, _n, _e, password, _b, _a in DEMO_USERS}
    for block in examples("graphql"):
        document = parse(block.text)
        assert not validate(schema._schema, document), f"{block} is not valid"
        kinds = {d.operation for d in document.definitions if hasattr(d, "operation")}
        if kinds == {OperationType.SUBSCRIPTION}:
            continue  # valid is all a request/response test can say of a stream
        headers = {}
        login = block.option("as")
        if login is not None:
            headers["Authorization"] = f"Bearer {sign_in(server, login, passwords[login])}"
        answer = httpx.post(f"{server}/graphql", json={"query": block.text}, headers=headers)
        body = answer.json()
        assert answer.status_code == 200 and "errors" not in body, f"{block}: {body}"
        assert body["data"], f"{block}: {body}"


def sign_in(server: str, login: str, password: str) -> str:
    query = "mutation($i: LogInInput!) { logIn(input: $i) { tokens { accessToken } } }"
    variables = {"i": {"login": login, "password": password}}
    body = httpx.post(f"{server}/graphql", json={"query": query, "variables": variables}).json()
    return str(body["data"]["logIn"]["tokens"]["accessToken"])


def test_the_demo_sign_ins_of_the_readme_work(server: str) -> None:
    """The README's table of demo users is the seed's, and each password signs in."""
    text = README.read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([a-z]+)` +\| `([a-z-]+)` +\|", text, re.MULTILINE)
    seeded = {(login, password) for login, _n, _e, password, _b, _a in DEMO_USERS}
    assert set(listed) == seeded
    for login, password in listed:
        assert sign_in(server, login, password)


# --- error codes ---------------------------------------------------------------------------


def _error_classes() -> Iterator[type[errors.ClientError] | type[errors.ServerError]]:
    """The classes of core/errors.py that give a code (DocumentError, say, only groups)."""
    pending: list[Any] = [errors.ClientError, errors.ServerError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__ == errors.__name__ and "code" in vars(cls):
            yield cls


def defined_codes() -> dict[str, str]:
    """Each `extensions.code` of core/errors.py and its HTTP status as the README writes it."""
    statuses: dict[str, set[str]] = {}
    for cls in _error_classes():
        legacy = getattr(cls, "legacy_status", None)
        status = f"{cls.status}" + (f" ({legacy} with `application/json`)" if legacy else "")
        statuses.setdefault(cls.code, set()).add(status)
    assert all(len(s) == 1 for s in statuses.values()), f"one code, two statuses: {statuses}"
    return {code: status.pop() for code, status in statuses.items()}


def between(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return text[text.index(start) + len(start) : text.index(end)]


def test_the_readme_lists_every_error_code_with_its_status() -> None:
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+?) \|", between("error-codes"), re.MULTILINE)
    listed = dict(rows)
    assert len(listed) == len(rows), "a code listed twice"
    expected = defined_codes()
    table = "\n".join(f"| `{code}` | {status} | … |" for code, status in sorted(expected.items()))
    assert listed == expected, f"README.md's error-code table should list:\n{table}"


def test_the_readme_lists_every_user_error_code() -> None:
    listed = re.findall(r"`([A-Z_]+)`", between("user-error-codes"))
    assert listed == [code.value for code in UserErrorCode]
