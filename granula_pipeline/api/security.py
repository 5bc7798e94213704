"""Who may call the API: `Authorization: Bearer <token>`, a key's scopes and datasets.

With no active key configured, an API bound to loopback answers everyone (as before keys
existed): only processes of this machine reach it, and browsers are kept out by the Host
allow-list and the Origin check (transport.py). `granula api` refuses to bind anything else
without a key. Once a key exists, every request needs one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from granula_pipeline.api.database import in_database
from granula_pipeline.lib.access.keys import ApiKey, Scope, any_active_key, authenticate

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A token from `granula keys create` (granula_<key_id>_<secret>).",
)
CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    """Who sent the request: a key, or no one (an open loopback API without keys)."""

    key: ApiKey | None

    def may(self, scope: Scope) -> bool:
        return self.key is None or self.key.allows(scope)

    def covers(self, dataset: str) -> bool:
        return self.key is None or self.key.covers(dataset)

    def check_dataset(self, dataset: str) -> None:
        if not self.covers(dataset):
            raise HTTPException(403, f"this API key is not allowed the dataset {dataset!r}")


def scoped(scope: Scope) -> Callable[..., Awaitable[Caller]]:
    """The caller, if it may act with `scope`: 401 without a valid key, 403 without the scope."""

    async def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        if credentials is None:
            if request.app.state.open_without_keys and not await in_database(
                request, any_active_key
            ):
                return Caller(None)
            raise HTTPException(
                401,
                "send an API key: `Authorization: Bearer <token>` (make one with "
                "`granula keys create`)",
                headers=CHALLENGE,
            )
        token = credentials.credentials
        key = await in_database(request, lambda conn: authenticate(conn, token))
        if key is None:
            raise HTTPException(
                401, "the API key is unknown, revoked or mistyped", headers=CHALLENGE
            )
        if not key.allows(scope):
            raise HTTPException(
                403, f"this API key lacks the {scope.value!r} scope; its scopes: {key.scopes}"
            )
        return Caller(key)

    return caller


Uploader = Annotated[Caller, Depends(scoped(Scope.UPLOAD))]
Reader = Annotated[Caller, Depends(scoped(Scope.READ))]
