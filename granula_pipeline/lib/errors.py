"""The two kinds of failure a load can meet: the input is wrong, or the database hiccuped."""

from __future__ import annotations

import csv

import polars as pl
import psycopg

# SQLSTATE classes and codes that a later attempt can get past, as mature loaders sort them:
# connection exceptions, serialization failures and deadlocks, operator intervention
# (admin/crash shutdown, cannot connect now) and insufficient resources.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class GranulaError(Exception):
    """Base of Granula's own errors; the message is written for the person who owns the file."""


class BadInputError(GranulaError):
    """The file itself is wrong: retrying cannot help, the user must fix or replace it."""

    def __init__(self, message: str, *, line: int | None = None, column: str | None = None):
        where = ", ".join(
            part
            for part in (f"line {line}" if line else "", f"column {column!r}" if column else "")
            if part
        )
        super().__init__(f"{message} ({where})" if where else message)
        self.line = line
        self.column = column


class UnclosedQuote(BadInputError):
    """A quoted field runs on to the end of the file: by the plain record rule, a stray quote."""


class TransientLoadError(GranulaError):
    """A failure that a later attempt may get past (connection lost, deadlock, server restart)."""


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth retrying: lost connections, deadlocks, restarts."""
    if isinstance(exc, TransientLoadError):
        return True
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        sqlstate = getattr(exc, "sqlstate", None)
        return sqlstate is None or _transient_sqlstate(sqlstate)
    if isinstance(exc, psycopg.Error):
        sqlstate = exc.sqlstate
        return sqlstate is not None and _transient_sqlstate(sqlstate)
    return isinstance(exc, (ConnectionError, TimeoutError))


def _transient_sqlstate(sqlstate: str) -> bool:
    return sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES


# A parser's own error reaching this far is a CSV Granula read wrong: never shown as it is.
UNPARSED_CSV = (
    "the file could not be read as CSV in the dialect sniffed from its start; check its "
    "delimiter, quotes and line ends, or set them in a .granula-dialect.json beside it "
    "(README: CSV dialects)"
)


def describe(exc: BaseException) -> str:
    """An error as a person should read it: the database's own words and code, no class paths;
    a CSV parser's internal error (Python's csv module, polars) as what to do about it."""
    if isinstance(exc, GranulaError):
        return str(exc)
    if isinstance(exc, csv.Error | pl.exceptions.PolarsError):
        return UNPARSED_CSV
    if isinstance(exc, psycopg.Error):
        message = exc.diag.message_primary if exc.diag else None
        code = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
        return f"PostgreSQL: {message or str(exc).strip()}{code}"
    return f"{type(exc).__name__}: {exc}"
