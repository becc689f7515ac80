"""Sign-up, sign-in, token refresh, sign-out, and the viewer's sessions and password.

Every sign-in starts a session (loaders/accounts.py); its access tokens name it, and stop
working the moment it ends: logOut, revokeSession, a reused refresh token, or
changePassword, which ends every other session of the account.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

import strawberry

from core import observability as metrics
from core.errors import NotFound, Unauthenticated
from domain.auth import SignInThrottle, hash_password, password_problem, verify_password
from domain.context import Context
from execution.ids import decode_id
from loaders import accounts
from loaders.rows import UserRow
from resolvers.mutations._base import Ctx, signed_in
from resolvers.payloads import UserError, user_error
from resolvers.sessions import SESSION
from resolvers.types import User

log = logging.getLogger(__name__)

# Sign-in mutations mint secrets that are shown once (refresh tokens are kept hashed), so a
# key cannot replay their result; and an anonymous caller has no identity to bind a key to.
ECHOED = strawberry.field(
    default=None,
    description="Echoed in the payload. Not an idempotency key for sessions and passwords: "
    "nothing is replayed by it (a retried signUp finds its login TAKEN, a retried logIn "
    "starts another session).",
)
LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
MAX_NAME = 100


@strawberry.type(description="Credentials for a signed-in session.")
class AuthTokens:
    access_token: str = strawberry.field(
        description="Send as `Authorization: Bearer <accessToken>`; short-lived."
    )
    access_token_expires_at: datetime = strawberry.field(description="When it expires.")
    refresh_token: str = strawberry.field(
        description="Trade for new tokens with refreshToken; each can be used once."
    )
    refresh_token_expires_at: datetime = strawberry.field(description="When it expires.")
    token_type: str = strawberry.field(default="Bearer", description="Always `Bearer`.")


@strawberry.input(description="A new account.")
class SignUpInput:
    login: str = strawberry.field(description="1–39 letters, digits or hyphens.")
    email: str = strawberry.field(description="An email address, kept private.")
    password: str = strawberry.field(description="8 characters to 72 bytes.")
    name: str = strawberry.field(default="", description="The display name.")
    client_mutation_id: str | None = ECHOED


@strawberry.input(description="Credentials to sign in with.")
class LogInInput:
    login: str = strawberry.field(description="The login or the email address.")
    password: str = strawberry.field(description="The password.")
    client_mutation_id: str | None = ECHOED


@strawberry.input(description="A refresh token to trade for new tokens.")
class RefreshTokenInput:
    refresh_token: str = strawberry.field(description="The refresh token.")
    client_mutation_id: str | None = ECHOED


@strawberry.input(description="The session to end: a refresh token's, or else this request's.")
class LogOutInput:
    refresh_token: str | None = strawberry.field(
        default=None,
        description="The refresh token of the session; omitted: the session of the access "
        "token this request is sent with.",
    )
    client_mutation_id: str | None = ECHOED


@strawberry.input(description="A session of the viewer's to end.")
class RevokeSessionInput:
    session_id: strawberry.ID = strawberry.field(description="The session (Session.id).")
    client_mutation_id: str | None = ECHOED


@strawberry.input(description="A new password for the viewer's account.")
class ChangePasswordInput:
    current_password: str = strawberry.field(description="The password it has now.")
    new_password: str = strawberry.field(description="8 characters to 72 bytes.")
    client_mutation_id: str | None = ECHOED


@strawberry.type(description="The result of signUp or logIn.")
class AuthPayload:
    viewer: UserRow | None = strawberry.field(
        graphql_type=User | None,
        description="The signed-in user, read with this request's rights: send the new "
        "access token to read private fields such as the email.",
    )
    tokens: AuthTokens | None = strawberry.field(description="The new session's tokens.")
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.type(description="The result of refreshToken.")
class RefreshTokenPayload:
    tokens: AuthTokens | None = strawberry.field(description="The rotated tokens.")
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.type(description="The result of logOut.")
class LogOutPayload:
    revoked: bool = strawberry.field(
        description="The session has ended: its refresh and access tokens stop working."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.type(description="The result of revokeSession.")
class RevokeSessionPayload:
    revoked_session_id: strawberry.ID | None = strawberry.field(
        description="The session that ended: its refresh and access tokens stop working."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.type(description="The result of changePassword.")
class ChangePasswordPayload:
    ended_sessions: int = strawberry.field(
        description="How many other sessions of the account ended (this one lives on)."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


def _sign_up_problems(data: SignUpInput) -> list[UserError]:
    problems = []
    if not LOGIN.match(data.login):
        problems.append(
            user_error(
                "login",
                "INVALID",
                "A login is 1–39 letters, digits or hyphens, not starting with a hyphen.",
            )
        )
    if len(data.email) > 320 or not EMAIL.match(data.email):
        problems.append(user_error("email", "INVALID", "That is not an email address."))
    if len(data.name) > MAX_NAME:
        problems.append(
            user_error("name", "TOO_LONG", f"A name has at most {MAX_NAME} characters.")
        )
    if (problem := password_problem(data.password)) is not None:
        problems.append(user_error("password", *problem))
    return problems


async def _tokens(context: Context, user: UserRow) -> AuthTokens:
    """The tokens of a new session of the user, noting the client and its address."""
    refresh = await accounts.start_session(
        context.session,
        user.id,
        context.services.settings.refresh_token_ttl,
        context.user_agent,
        context.client_address,
    )
    return _pair(context, refresh)


def _pair(context: Context, refresh: accounts.RefreshToken) -> AuthTokens:
    access = context.services.tokens.issue(refresh.user_id, refresh.session_id)
    return AuthTokens(
        access_token=access.token,
        access_token_expires_at=access.expires_at,
        refresh_token=refresh.token,
        refresh_token_expires_at=refresh.expires_at,
    )


@strawberry.type
class AuthMutations:
    @strawberry.mutation(description="Create an account and sign in to it.")
    async def sign_up(self, info: Ctx, input: SignUpInput) -> AuthPayload:
        context = info.context
        problems = _sign_up_problems(input)
        if problems:
            return AuthPayload(
                viewer=None,
                tokens=None,
                user_errors=problems,
                client_mutation_id=input.client_mutation_id,
            )
        hashed = await hash_password(input.password, context.services.settings.bcrypt_rounds)
        try:
            async with context.session.transaction():
                user = await accounts.create_user(
                    context.session, input.login, input.name.strip(), input.email, hashed
                )
                tokens = await _tokens(context, user)
        except accounts.Conflict as taken:
            return AuthPayload(
                viewer=None,
                tokens=None,
                user_errors=[user_error(taken.field, "TAKEN", taken.message)],
                client_mutation_id=input.client_mutation_id,
            )
        return AuthPayload(
            viewer=user,
            tokens=tokens,
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Sign in with a login (or email) and password: a new session. Repeated "
        "failures from one client address slow that address down for that account, with a "
        "growing wait (RATE_LIMITED with `retryAfter`)."
    )
    async def log_in(self, info: Ctx, input: LogInInput) -> AuthPayload:
        context = info.context
        settings = context.services.settings
        throttle = SignInThrottle.of(settings)
        keys = throttle.keys(input.login, context.client_address)
        await throttle.check(context.session, keys)
        found = await accounts.find_credentials(context.session, input.login.strip())
        hashed = found[1] if found else None
        if found is None or not await verify_password(
            input.password, hashed, settings.bcrypt_rounds
        ):
            await throttle.failed(context.session, keys)
            metrics.record_sign_in("failure")
            log.info("sign-in failed", extra={"user_id": found[0].id if found else None})
            return AuthPayload(
                viewer=None,
                tokens=None,
                user_errors=[user_error(None, "INVALID_CREDENTIALS", "Wrong login or password.")],
                client_mutation_id=input.client_mutation_id,
            )
        user = found[0]
        async with context.session.transaction():
            await throttle.succeeded(context.session, keys)
            tokens = await _tokens(context, user)
        metrics.record_sign_in("success")
        return AuthPayload(
            viewer=user,
            tokens=tokens,
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Trade a refresh token for new tokens of its session. Each refresh "
        "token works once; presenting a used one ends its session."
    )
    async def refresh_token(self, info: Ctx, input: RefreshTokenInput) -> RefreshTokenPayload:
        context = info.context
        refresh = await accounts.rotate(
            context.session, input.refresh_token, context.services.settings.refresh_token_ttl
        )
        return RefreshTokenPayload(
            tokens=_pair(context, refresh),
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="End a session, the refresh token's or this request's: its refresh "
        "and access tokens stop working at once, and its WebSockets close."
    )
    async def log_out(self, info: Ctx, input: LogOutInput) -> LogOutPayload:
        context = info.context
        if input.refresh_token is not None:
            if not await accounts.end_session_of(context.session, input.refresh_token):
                raise Unauthenticated("The refresh token is not valid.")
        else:
            user, session_id = signed_in(context), context.viewer.session_id
            if session_id is not None:
                await accounts.end_session(context.session, session_id, user.id, "SIGNED_OUT")
        return LogOutPayload(
            revoked=True, user_errors=[], client_mutation_id=input.client_mutation_id
        )

    @strawberry.mutation(
        description="End one of the viewer's sessions (see `viewer.sessions`): its tokens "
        "stop working at once, and its WebSockets close."
    )
    async def revoke_session(self, info: Ctx, input: RevokeSessionInput) -> RevokeSessionPayload:
        context = info.context
        user = signed_in(context)
        _, pk = decode_id(input.session_id, expected=SESSION)
        if not await accounts.end_session(context.session, pk, user.id, "REVOKED"):
            raise NotFound(f"Could not find a live session with the id {input.session_id!r}.")
        return RevokeSessionPayload(
            revoked_session_id=input.session_id,
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Change the viewer's password, given the current one; every other "
        "session of the account ends. Wrong current passwords are slowed down as failed "
        "sign-ins are."
    )
    async def change_password(self, info: Ctx, input: ChangePasswordInput) -> ChangePasswordPayload:
        context = info.context
        user = signed_in(context)
        settings = context.services.settings
        throttle = SignInThrottle.of(settings)
        keys = throttle.keys(user.login, context.client_address)
        await throttle.check(context.session, keys)
        hashed = await accounts.password_hash(context.session, user.id)
        if not await verify_password(input.current_password, hashed, settings.bcrypt_rounds):
            await throttle.failed(context.session, keys)
            metrics.record_sign_in("failure")
            return _password_refused(
                user_error("currentPassword", "INVALID_CREDENTIALS", "Wrong password."), input
            )
        if (problem := password_problem(input.new_password)) is not None:
            return _password_refused(user_error("newPassword", *problem), input)
        new_hash = await hash_password(input.new_password, settings.bcrypt_rounds)
        keep = context.viewer.session_id or 0
        async with context.session.transaction():
            await accounts.set_password_hash(context.session, user.id, new_hash)
            ended = await accounts.end_other_sessions(
                context.session, user.id, keep, "PASSWORD_CHANGED"
            )
            await throttle.succeeded(context.session, keys)
        return ChangePasswordPayload(
            ended_sessions=ended, user_errors=[], client_mutation_id=input.client_mutation_id
        )


def _password_refused(error: UserError, input: ChangePasswordInput) -> ChangePasswordPayload:
    return ChangePasswordPayload(
        ended_sessions=0, user_errors=[error], client_mutation_id=input.client_mutation_id
    )
