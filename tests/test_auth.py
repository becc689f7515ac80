"""Sign-up, sign-in, tokens and throttling, through HTTP as clients use them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from tests.conftest import TEST_SETTINGS

SIGN_UP = """mutation($input: SignUpInput!) { signUp(input: $input) {
  viewer { login email } tokens { accessToken refreshToken tokenType }
  userErrors { field message code } clientMutationId } }"""
LOG_IN = """mutation($input: LogInInput!) { logIn(input: $input) {
  viewer { login } tokens { accessToken refreshToken } userErrors { field message code } } }"""
REFRESH = """mutation($t: String!) { refreshToken(input: {refreshToken: $t}) {
  tokens { accessToken refreshToken } } }"""
LOG_OUT = "mutation($t: String!) { logOut(input: {refreshToken: $t}) { revoked } }"
VIEWER = "{ viewer { login email } }"
_n = itertools.count(1)


async def _gql(
    client: Any, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )


async def _sign_up(client: Any, password: str = "correct horse") -> tuple[str, dict[str, Any]]:
    login = f"auth-{datetime.now(UTC).timestamp():.0f}-{next(_n)}"
    response = await _gql(
        client,
        SIGN_UP,
        {
            "input": {
                "login": login,
                "email": f"{login}@example.test",
                "password": password,
                "name": "Auth Test",
                "clientMutationId": "m1",
            }
        },
    )
    body = response.json()
    payload = body["data"]["signUp"]
    assert payload["userErrors"] == [], payload
    assert [e["path"] for e in body.get("errors", [])] in ([], [["signUp", "viewer", "email"]])
    return login, payload


async def test_sign_up_signs_in_and_the_token_names_the_viewer(client: Any) -> None:
    login, payload = await _sign_up(client)
    # the payload is read with the rights of the (anonymous) request that signed up
    assert payload["viewer"] == {"login": login, "email": None}
    assert payload["tokens"]["tokenType"] == "Bearer" and payload["clientMutationId"] == "m1"
    me = await _gql(client, VIEWER, token=payload["tokens"]["accessToken"])
    assert me.json()["data"] == {"viewer": {"login": login, "email": f"{login}@example.test"}}


async def test_sign_up_refuses_bad_and_taken_input_with_user_errors(client: Any) -> None:
    login, _ = await _sign_up(client)
    cases = [
        (
            {"login": "-bad", "email": "x@example.test", "password": "long enough"},
            [(["input", "login"], "INVALID")],
        ),
        (
            {"login": "fine-one", "email": "nope", "password": "long enough"},
            [(["input", "email"], "INVALID")],
        ),
        (
            {"login": "fine-two", "email": "y@example.test", "password": "short"},
            [(["input", "password"], "TOO_SHORT")],
        ),
        (
            {"login": "fine-three", "email": "z@example.test", "password": "é" * 37},
            [(["input", "password"], "TOO_LONG")],
        ),
        (
            {"login": login.upper(), "email": "w@example.test", "password": "long enough"},
            [(["input", "login"], "TAKEN")],
        ),
        (
            {"login": "fine-four", "email": f"{login}@EXAMPLE.test", "password": "long enough"},
            [(["input", "email"], "TAKEN")],
        ),
    ]
    for data, expected in cases:
        response = await _gql(client, SIGN_UP, {"input": data})
        payload = response.json()["data"]["signUp"]
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == expected, data
        assert payload["viewer"] is None and payload["tokens"] is None


async def test_log_in_with_login_or_email_and_same_answer_for_unknown(client: Any) -> None:
    login, _ = await _sign_up(client)
    by_login = await _gql(
        client, LOG_IN, {"input": {"login": login.upper(), "password": "correct horse"}}
    )
    by_email = await _gql(
        client, LOG_IN, {"input": {"login": f"{login}@example.test", "password": "correct horse"}}
    )
    wrong = await _gql(client, LOG_IN, {"input": {"login": login, "password": "wrong horse"}})
    unknown = await _gql(
        client, LOG_IN, {"input": {"login": "nobody-at-all", "password": "wrong horse"}}
    )
    assert by_login.json()["data"]["logIn"]["viewer"] == {"login": login}
    assert by_email.json()["data"]["logIn"]["viewer"] == {"login": login}
    assert (
        wrong.json()["data"]
        == unknown.json()["data"]
        == {
            "logIn": {
                "viewer": None,
                "tokens": None,
                "userErrors": [
                    {
                        "field": None,
                        "message": "Wrong login or password.",
                        "code": "INVALID_CREDENTIALS",
                    }
                ],
            }
        }
    )


async def test_demo_user_signs_in_with_the_documented_password(client: Any) -> None:
    response = await _gql(
        client, LOG_IN, {"input": {"login": "alice", "password": "alice-in-acme"}}
    )
    assert response.json()["data"]["logIn"]["viewer"] == {"login": "alice"}


async def test_refresh_rotates_and_reuse_ends_the_session(client: Any) -> None:
    _, payload = await _sign_up(client)
    first = payload["tokens"]["refreshToken"]
    rotated = (await _gql(client, REFRESH, {"t": first})).json()["data"]["refreshToken"]
    second, access = rotated["tokens"]["refreshToken"], rotated["tokens"]["accessToken"]
    assert second != first
    assert (await _gql(client, VIEWER, token=access)).status_code == 200
    reuse = (await _gql(client, REFRESH, {"t": first})).json()
    after_reuse = (await _gql(client, REFRESH, {"t": second})).json()
    assert reuse["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "already used" in reuse["errors"][0]["message"]
    assert after_reuse["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert after_reuse["errors"][0]["extensions"]["reason"] == "SESSION_ENDED"
    assert after_reuse["errors"][0]["message"] == (
        "The session has ended: one of its refresh tokens was used twice, so it was revoked. "
        "Sign in again."
    )


async def test_log_out_revokes_the_session(client: Any) -> None:
    _, payload = await _sign_up(client)
    token = payload["tokens"]["refreshToken"]
    out = (await _gql(client, LOG_OUT, {"t": token})).json()
    again = (await _gql(client, REFRESH, {"t": token})).json()
    twice = (await _gql(client, LOG_OUT, {"t": token})).json()
    unknown = (await _gql(client, LOG_OUT, {"t": "not-a-refresh-token"})).json()
    assert out["data"] == twice["data"] == {"logOut": {"revoked": True}}
    assert again["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert unknown["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def _forge(**changes: Any) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": "1",
        "sid": "1",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "aud": TEST_SETTINGS.jwt_audience,
        "iss": TEST_SETTINGS.jwt_issuer,
    }
    key = changes.pop("key", TEST_SETTINGS.jwt_secret)
    algorithm = changes.pop("algorithm", "HS256")
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return jwt.encode(claims, key, algorithm=algorithm)


MALFORMED = (
    "MALFORMED",
    "The access token is malformed: send the accessToken that logIn or refreshToken returned.",
)
BAD_SIGNATURE = (
    "BAD_SIGNATURE",
    "The access token's signature does not match: it was not issued by this server (or the "
    "server's key has changed). Sign in again.",
)
EXPIRED = (
    "EXPIRED",
    "The access token has expired: trade the refresh token for new tokens with "
    "refreshToken, or sign in again.",
)
NOT_FOR_US = ("WRONG_AUDIENCE", "The access token was issued for another service.")


@pytest.mark.parametrize(
    ("token", "refusal"),
    [
        (_forge(exp=datetime.now(UTC) - timedelta(seconds=5)), EXPIRED),
        (_forge(key="another-secret-of-sufficient-length-000"), BAD_SIGNATURE),
        (_forge(aud="someone-else"), NOT_FOR_US),
        (_forge(iss="someone-else"), NOT_FOR_US),
        (_forge(exp=None), MALFORMED),
        (_forge(sub=None), MALFORMED),
        (_forge(sub="not-a-number"), MALFORMED),
        (_forge(sid=None), MALFORMED),
        (_forge(sid="1" * 40), MALFORMED),
        (_forge(algorithm="none", key=None), BAD_SIGNATURE),
        ("not.a.jwt", MALFORMED),
        ("t7e3.t7e3.t7e3", MALFORMED),  # not UTF-8 inside: no codec's words in the answer
        ("", None),
    ],
    ids=[
        "expired",
        "wrong-key",
        "wrong-audience",
        "wrong-issuer",
        "no-exp",
        "no-sub",
        "bad-sub",
        "no-sid",
        "huge-sid",
        "alg-none",
        "garbage",
        "not-utf8",
        "empty",
    ],
)
async def test_bad_tokens_are_401_not_anonymous_and_say_why_for_people(
    client: Any, token: str, refusal: tuple[str, str] | None
) -> None:
    response = await client.post(
        "/graphql", json={"query": VIEWER}, headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="issuegraph"')
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in response.json()
    if refusal is not None:
        assert (error["extensions"]["reason"], error["message"]) == refusal
        assert refusal[1] in response.headers["www-authenticate"]


async def test_other_authorization_schemes_are_401(client: Any) -> None:
    response = await client.post(
        "/graphql", json={"query": VIEWER}, headers={"authorization": "Basic YWxpY2U6eA=="}
    )
    assert response.status_code == 401


async def test_signed_in_member_reads_private_project(client: Any) -> None:
    token = (
        await _gql(client, LOG_IN, {"input": {"login": "bob", "password": "bob-builds-web"}})
    ).json()
    access = token["data"]["logIn"]["tokens"]["accessToken"]
    query = '{ organization(slug: "acme") { project(key: "OPS") { key } } }'
    anonymous = (await _gql(client, query)).json()
    member = (await _gql(client, query, token=access)).json()
    assert anonymous["data"] == {"organization": {"project": None}}
    assert member["data"] == {"organization": {"project": {"key": "OPS"}}}
