"""Sign-up, sign-in, token refresh and sign-out."""

from __future__ import annotations

import re
from datetime import datetime

import strawberry

from core.errors import Unauthenticated
from domain.auth import hash_password, password_problem, verify_password
from domain.context import Context
from loaders import accounts
from loaders.rows import UserRow
from resolvers.mutations._base import Ctx
from resolvers.payloads import UserError, user_error
from resolvers.types import User

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
    client_mutation_id: str | None = strawberry.field(default=None, description="Echoed.")


@strawberry.input(description="Credentials to sign in with.")
class LogInInput:
    login: str = strawberry.field(description="The login or the email address.")
    password: str = strawberry.field(description="The password.")
    client_mutation_id: str | None = strawberry.field(default=None, description="Echoed.")


@strawberry.input(description="A refresh token to trade for new tokens.")
class RefreshTokenInput:
    refresh_token: str = strawberry.field(description="The refresh token.")
    client_mutation_id: str | None = strawberry.field(default=None, description="Echoed.")


@strawberry.input(description="A refresh token whose session ends.")
class LogOutInput:
    refresh_token: str = strawberry.field(description="The refresh token of the session.")
    client_mutation_id: str | None = strawberry.field(default=None, description="Echoed.")


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
    revoked: bool = strawberry.field(description="The session's refresh tokens are revoked.")
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
    settings = context.services.settings
    refresh = await accounts.start_family(context.session, user.id, settings.refresh_token_ttl)
    return _pair(context, refresh)


def _pair(context: Context, refresh: accounts.RefreshToken) -> AuthTokens:
    access = context.services.tokens.issue(refresh.user_id)
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
        description="Sign in with a login (or email) and password. Repeated "
        "failures are slowed down per account and per client address."
    )
    async def log_in(self, info: Ctx, input: LogInInput) -> AuthPayload:
        context = info.context
        settings = context.services.settings
        keys = accounts.throttle_keys(input.login, context.client_address)
        await accounts.check_throttle(
            context.session, keys, settings.login_max_failures, settings.login_failure_window
        )
        found = await accounts.find_credentials(context.session, input.login.strip())
        hashed = found[1] if found else None
        if found is None or not await verify_password(
            input.password, hashed, settings.bcrypt_rounds
        ):
            await accounts.record_failure(context.session, keys, settings.login_failure_window)
            return AuthPayload(
                viewer=None,
                tokens=None,
                user_errors=[user_error(None, "INVALID_CREDENTIALS", "Wrong login or password.")],
                client_mutation_id=input.client_mutation_id,
            )
        user = found[0]
        async with context.session.transaction():
            await accounts.clear_failures(context.session, keys[0])
            tokens = await _tokens(context, user)
        return AuthPayload(
            viewer=user,
            tokens=tokens,
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Trade a refresh token for new tokens. Each refresh "
        "token works once; presenting a used one revokes its whole session."
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

    @strawberry.mutation(description="End a session: its refresh tokens stop working.")
    async def log_out(self, info: Ctx, input: LogOutInput) -> LogOutPayload:
        if not await accounts.revoke(info.context.session, input.refresh_token):
            raise Unauthenticated("The refresh token is not valid.")
        return LogOutPayload(
            revoked=True, user_errors=[], client_mutation_id=input.client_mutation_id
        )
