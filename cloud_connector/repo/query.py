"""SQL pieces the repositories share: a date window and one page of a listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..storage import Executor, Row
from ..timeutil import db_dt


def window(column: str, date_from: datetime | None, date_to: datetime | None) -> tuple[str, list[Any]]:
    """SQL for ``date_from <= column < date_to`` (either bound optional), to append with its ``AND``."""
    where, params = "", []
    if date_from is not None:
        where += f" AND {column} >= ?"
        params.append(db_dt(date_from))
    if date_to is not None:
        where += f" AND {column} < ?"
        params.append(db_dt(date_to))
    return where, params


async def page(
    ex: Executor, table: str, where: str, params: list[Any], *, order: str, offset: int, limit: int, columns: str = "*"
) -> tuple[list[Row], int]:
    """One page (``LIMIT``/``OFFSET``) of ``table``'s rows matching ``where``, in ``order``, and how many match in all."""
    total = await ex.fetchone(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params)  # noqa: S608
    rows = await ex.fetchall(
        f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
        [*params, limit, offset],
    )
    return rows, int(total["n"]) if total else 0
