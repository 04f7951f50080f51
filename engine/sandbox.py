"""Placeholder: replaced by the sandbox work. Keep ``syntax_errors``' signature."""

from __future__ import annotations

from typing import Literal

from RestrictedPython import compile_restricted_eval, compile_restricted_exec


def syntax_errors(source: str, mode: Literal["exec", "eval"]) -> list[tuple[int | None, str]]:
    """Problems compiling ``source`` under the sandbox policy: (line within source, message)."""
    compile_fn = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    result = compile_fn(source)
    return [(None, e) for e in result.errors]
