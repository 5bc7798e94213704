"""API keys: made by the operator (`granula keys create`), kept as a hash, checked per request.

A token is `granula_<key_id>_<secret>`: the key id finds the row, the secret (32 random bytes) is
compared by its SHA-256, which is all that is stored. A secret that random needs no slow hash: no
one can guess it from its digest. Each key carries scopes (upload, read) and, optionally, the
datasets it is limited to.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import psycopg
from psycopg.rows import class_row

TOKEN_PREFIX = "granula_"
_TOKEN = re.compile(r"granula_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


class Scope(StrEnum):
    UPLOAD = "upload"
    READ = "read"


@dataclass
class ApiKey:
    key_id: str
    name: str
    scopes: list[str]
    datasets: list[str] | None  # None: every dataset
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: Scope) -> bool:
        return scope.value in self.scopes

    def covers(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets

    def summary(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": self.scopes,
            "datasets": self.datasets,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked": self.revoked_at is not None,
        }


_COLUMNS = "key_id, name, scopes, datasets, created_at, last_used_at, revoked_at"


def create_key(
    conn: psycopg.Connection,
    name: str,
    scopes: list[Scope],
    datasets: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its token; the token is shown this once and never stored."""
    if not scopes:
        raise ValueError("give a key at least one scope: upload, read")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    cursor = conn.cursor(row_factory=class_row(ApiKey))
    key = cursor.execute(
        f"INSERT INTO granula.api_keys (key_id, name, secret_sha256, scopes, datasets) "
        f"VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (key_id, name, _digest(secret), sorted({s.value for s in scopes}), datasets),
    ).fetchone()
    assert key is not None
    return key, f"{TOKEN_PREFIX}{key_id}_{secret}"


def list_keys(conn: psycopg.Connection) -> list[ApiKey]:
    cursor = conn.cursor(row_factory=class_row(ApiKey))
    return cursor.execute(f"SELECT {_COLUMNS} FROM granula.api_keys ORDER BY created_at").fetchall()


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    """Revoke the key at once; False if there is no such key (or it was revoked before)."""
    revoked = conn.execute(
        "UPDATE granula.api_keys SET revoked_at = now() "
        "WHERE key_id = %s AND revoked_at IS NULL RETURNING key_id",
        (key_id,),
    ).fetchone()
    return revoked is not None


def any_active_key(conn: psycopg.Connection) -> bool:
    found = conn.execute("SELECT 1 FROM granula.api_keys WHERE revoked_at IS NULL LIMIT 1")
    return found.fetchone() is not None


def authenticate(conn: psycopg.Connection, token: str) -> ApiKey | None:
    """The active key this token is, else None (malformed, unknown, revoked or wrong secret)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    key_id, secret = match.groups()
    row = conn.execute(
        f"SELECT secret_sha256, {_COLUMNS} FROM granula.api_keys "
        "WHERE key_id = %s AND revoked_at IS NULL",
        (key_id,),
    ).fetchone()
    if row is None or not hmac.compare_digest(bytes(row[0]), _digest(secret)):
        return None
    # At most once a minute per key: a busy client must not queue on its key's row.
    conn.execute(
        "UPDATE granula.api_keys SET last_used_at = now() WHERE key_id = %s "
        "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        (key_id,),
    )
    return ApiKey(*row[1:])


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
