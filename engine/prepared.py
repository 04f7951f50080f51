"""Statements of the engine's hot path, compiled once per dialect.

For the small statements of a step, SQLAlchemy Core spends more time getting ready to
run a statement (cache key, compiled-cache lookup, parameter processing, result
set-up) than SQLite spends running it: measured on the benchmark, about a sixth of a
durable step. The fixed statements of every step (lock, save, task rows, audit) are
therefore wrapped in :class:`Prepared`:

- compiled once per dialect from the same Core statement (so the SQL is SQLAlchemy's,
  ``FOR UPDATE`` included where the dialect has it);
- parameters converted by the column types' own bind processors (time zones, JSON,
  the compressed state), in the dialect's paramstyle;
- run with ``Connection.exec_driver_sql``, so the statement is still an event of the
  connection (statement counters see it) inside the unit of work's transaction;
- result rows converted by the selected columns' result processors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

_Processor = Callable[[Any], Any] | None


class _Compiled:
    def __init__(self, statement, dialect: Dialect):
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = compiled.positional
        self.names: list[str] = list(compiled.positiontup or compiled.binds)
        self.bind: list[tuple[str, _Processor]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in self.names
        ]
        # Values written into the statement (``.values(state="completed")``).
        self.fixed = {name: bind.value for name, bind in compiled.binds.items()
                      if not bind.required}
        # The SELECT's columns, or an INSERT/UPDATE's RETURNING columns.
        self.result: list[_Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.exported_columns
        ]

    def parameters(self, values: Mapping[str, Any]):
        if self.fixed:
            values = {**self.fixed, **values}
        converted = [
            (name, process(values[name]) if process is not None else values[name])
            for name, process in self.bind
        ]
        if self.positional:
            return tuple(value for _, value in converted)
        return dict(converted)

    def row(self, raw: Sequence[Any]) -> tuple:
        return tuple(
            process(value) if process is not None else value
            for process, value in zip(self.result, raw, strict=True)
        )


class Prepared:
    """A Core statement with bound parameters only (no expanding ``IN``)."""

    def __init__(self, statement: Executable):
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, conn: Connection) -> _Compiled:
        compiled = self._by_dialect.get(conn.dialect.name)
        if compiled is None:
            compiled = self._by_dialect[conn.dialect.name] = _Compiled(
                self.statement, conn.dialect)
        return compiled

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run with one set of values; the number of rows it changed."""
        compiled = self._compiled(conn)
        return conn.exec_driver_sql(compiled.sql, compiled.parameters(values)).rowcount

    def execute_many(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        compiled = self._compiled(conn)
        conn.exec_driver_sql(compiled.sql, [compiled.parameters(row) for row in rows])

    def first(self, conn: Connection, values: Mapping[str, Any]) -> tuple | None:
        """The first row of a SELECT, its values converted as Core would, or None."""
        compiled = self._compiled(conn)
        raw = conn.exec_driver_sql(compiled.sql, compiled.parameters(values)).first()
        return None if raw is None else compiled.row(raw)

    def all(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple]:
        compiled = self._compiled(conn)
        rows = conn.exec_driver_sql(compiled.sql, compiled.parameters(values)).all()
        return [compiled.row(raw) for raw in rows]
