"""Storage: a small SQL interface the repositories are written against.

The repositories (:mod:`cloud_connector.repo`) only use :class:`Executor` and :class:`Database`, with
``?`` placeholders and SQL that SQLite and PostgreSQL both accept; a PostgreSQL backend is one more
class implementing these two protocols (placeholders rewritten to ``$n``) and its own migrations folder.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

type Row = dict[str, Any]
type Work[T] = Callable[[Executor], Coroutine[Any, Any, T]]


class Executor(Protocol):
    """Runs statements: on its own (autocommit) or inside a transaction."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        ...


class Database(Executor, Protocol):
    """A connection pool of one: statements run one at a time, transactions are exclusive."""

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """Everything run on the yielded executor commits together, or not at all."""
        ...

    async def run_transactions[T](self, works: Sequence[Work[T]]) -> list[T | Exception]:
        """Run each ``work(executor)`` in a transaction of its own, in order: its result, or the exception
        that rolled it back. A work only awaits the executor it is given (a backend may run it elsewhere
        than on the event loop, all of them in one go)."""
        ...

    async def close(self) -> None: ...


class MigrationError(Exception):
    """The database schema is newer than this program, or a migration failed."""
