"""The sandbox for every piece of Python that comes from a BPMN file.

Script tasks, gateway conditions, pre/post scripts and timer expressions are written
by process owners and uploaded with a diagram: they are untrusted code. They are
compiled with RestrictedPython under a stricter policy (:class:`SandboxPolicy`) and run
with a small set of builtins and guard hooks:

* no imports, no ``open``/``exec``/``eval``/``compile``/``globals``/``vars``/``getattr``,
  no names or attributes starting with ``_`` (refused at compile time), no class
  definitions, no bare ``except:``;
* attribute reads go through ``safer_getattr`` (no ``str.format``, no ``mro``),
  subscripts only on plain containers, writes only to dicts and lists;
* a time limit: the policy puts a *tick* at the top of every ``while`` body, every
  function and lambda body, and every ``for`` loop and comprehension iterates through
  a ticking iterator. A tick raises once the deadline has passed, so any Python-level
  loop or recursion is stopped. In the main thread a ``SIGALRM`` timer is a backstop.
  A single long C-level operation (e.g. sorting a huge list) cannot be interrupted by
  either: the size guards below keep such operations small;
* size guards: ``range`` is limited to 100 000 items; ``+ * ** << %`` (and their
  augmented forms), ``pow``, ``sum`` of lists, f-string and ``%`` widths and the
  padding/``replace``/``join`` methods of ``str`` refuse results over
  :data:`MAX_SEQUENCE` items or :data:`MAX_INT_BITS` bits;
  on Linux the ticks also stop a script whose process memory grew by more than
  :data:`MEMORY_LIMIT_BYTES`.

Scripts run on a deep copy of the task data: a script that fails changes nothing.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import operator
import os
import re
import signal
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from types import CodeType, FunctionType, GeneratorType, ModuleType
from typing import Any, Literal

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr,
)
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "MAX_FORMAT_WIDTH",
    "MAX_INT_BITS",
    "MAX_RANGE",
    "MAX_SEQUENCE",
    "MEMORY_LIMIT_BYTES",
    "SandboxPolicy",
    "ScriptError",
    "ScriptTimeout",
    "check_percent_format",
    "check_str_method_call",
    "clear_cache",
    "evaluate",
    "execute",
    "guarded_binop",
    "limits",
    "syntax_errors",
]

DEFAULT_TIME_LIMIT = 1.0
#: ``range`` refuses to produce more items than this.
MAX_RANGE = 100_000
#: Largest str/bytes/list/tuple a guarded operation may produce.
MAX_SEQUENCE = 1_000_000
#: Largest integer (in bits, ~30 000 decimal digits) ``**``, ``*`` and ``<<`` may produce.
MAX_INT_BITS = 100_000
#: Bound on exponent bits x modulus bits for ``pow(base, exponent, modulus)``.
_MAX_MODPOW_WORK = 20_000_000
#: Widest field a format spec (f-string, ``%``) may ask for.
MAX_FORMAT_WIDTH = 10_000
#: How much the process' resident memory may grow while one script runs (Linux only).
MEMORY_LIMIT_BYTES = 256 * 1024 * 1024
_MEMORY_CHECK_INTERVAL = 0.01  # seconds between two memory checks in the ticks

FILENAME = "<script>"

Mode = Literal["exec", "eval"]


# --------------------------------------------------------------------------- errors


class ScriptError(Exception):
    """A script or expression from a process definition failed or was refused.

    ``message`` is meant for the process owner; ``line`` is the line within the
    script's source (1-based) when known.
    """

    def __init__(self, message: str, *, line: int | None = None, show_line: bool = True):
        super().__init__(message)
        self.message = message
        self.line = line
        self._show_line = show_line

    def __str__(self) -> str:
        if self.line is not None and self._show_line:
            return f"line {self.line}: {self.message}"
        return self.message


class ScriptTimeout(ScriptError):
    """The script ran longer than its time limit and was stopped."""


class _Interrupt(BaseException):
    """Raised inside the sandbox to stop a script.

    A ``BaseException`` so that ``except Exception:`` in a script cannot catch it
    (scripts get neither ``BaseException`` nor a bare ``except:``).
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------ compile policy

_IMPORT_MESSAGE = "script tried to import a module, which is not allowed"

# RestrictedPython's messages, reworded for process owners.
_MESSAGE_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r'"(.+)" is an invalid variable name because it starts with "_"\.?'),
        r'the name "\1" is not allowed (names starting with "_" are reserved)',
    ),
    (
        re.compile(r'"(.+)" is an invalid attribute name because it starts with "_"\.?'),
        r'access to the attribute "\1" is not allowed '
        r'(names starting with "_" are reserved)',
    ),
    (
        re.compile(r'"(.+)" is a restricted name, that is forbidden to access.*'),
        r'access to "\1" is not allowed',
    ),
    (re.compile(r"Exec calls are not allowed\."), "exec() is not allowed in scripts"),
    (re.compile(r"Eval calls are not allowed\."), "eval() is not allowed in scripts"),
    (re.compile(r'"(.+)" is a reserved name\.'), r'the name "\1" is reserved'),
    (re.compile(r"(\w+) statements are not allowed\."), r"\1 statements are not allowed"),
)


def _reword(info: str) -> str:
    for pattern, replacement in _MESSAGE_REWRITES:
        if pattern.fullmatch(info):
            return pattern.sub(replacement, info)
    return info.rstrip(".")


def _located(node: ast.AST, like: ast.AST) -> ast.AST:
    for child in ast.walk(node):
        if "lineno" in child._attributes:
            copy_locations(child, like)
    return node


def _tick_call(like: ast.AST) -> ast.Call:
    call = ast.Call(func=ast.Name("_tick_", ast.Load()), args=[], keywords=[])
    return _located(call, like)  # type: ignore[return-value]


_GUARDED_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Mult: "*",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.Mod: "%",
}
_WIDTH_IN_SPEC = re.compile(r"\d+")


class SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, stricter, with time and size guards woven in."""

    def error(self, node: ast.AST, info: str) -> None:
        super().error(node, _reword(info))

    # -- refused outright
    def visit_Import(self, node: ast.Import) -> ast.AST:
        self.error(node, _IMPORT_MESSAGE)
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        self.error(node, _IMPORT_MESSAGE)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed in scripts")
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        if node.type is None:
            self.error(
                node,
                "a bare 'except:' is not allowed; name the exception, "
                "e.g. 'except ValueError:'",
            )
        return super().visit_ExceptHandler(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        spec = node.format_spec
        if spec is not None:
            if isinstance(spec, ast.JoinedStr):
                for part in spec.values:
                    if not isinstance(part, ast.Constant):
                        self.error(node, "computed format specifications are not allowed")
                        break
                    for width in _WIDTH_IN_SPEC.findall(str(part.value)):
                        if int(width) > MAX_FORMAT_WIDTH:
                            self.error(
                                node,
                                f"format width {width} is too large "
                                f"(at most {MAX_FORMAT_WIDTH})",
                            )
        return super().visit_FormattedValue(node)

    # -- time guards
    def visit_While(self, node: ast.While) -> Any:
        node = super().visit_While(node)
        node.body.insert(0, _located(ast.Expr(_tick_call(node)), node))
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node = super().visit_FunctionDef(node)
        node.body.insert(0, _located(ast.Expr(_tick_call(node)), node))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        node = super().visit_Lambda(node)
        # ``lambda: body`` -> ``lambda: _tick_() or body`` (_tick_ returns None)
        body = ast.BoolOp(op=ast.Or(), values=[_tick_call(node), node.body])
        copy_locations(body, node)
        node.body = body
        return node

    # -- size guards
    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = super().visit_BinOp(node)
        symbol = _GUARDED_BINOPS.get(type(node.op))
        if symbol is None:
            return node
        call = ast.Call(
            func=ast.Name("_binop_", ast.Load()),
            args=[ast.Constant(symbol), node.left, node.right],
            keywords=[],
        )
        copy_locations(call, node)
        for child in (call.func, call.args[0]):
            copy_locations(child, node)
        return call


# -------------------------------------------------------------------------- compile


@functools.lru_cache(maxsize=4096)
def _compile(source: str, mode: Mode) -> tuple[CodeType | None, tuple[tuple[int | None, str], ...]]:
    """Compile ``source`` under :class:`SandboxPolicy`; cached by source text.

    Text from a BPMN file is often indented with the XML around it: a script is
    dedented, an expression stripped (as ``eval`` does). Line numbers stay those of
    the original text.
    """
    offset = 0
    if mode == "eval":
        stripped = source.lstrip()
        offset = source[: len(source) - len(stripped)].count("\n")
        text = stripped.rstrip()
    else:
        text = textwrap.dedent(source)
    try:
        tree = ast.parse(text, FILENAME, mode)
    except SyntaxError as exc:
        message = f"syntax error: {exc.msg}"
        return None, ((exc.lineno + offset if exc.lineno else None, message),)
    except ValueError as exc:  # e.g. NUL bytes in the source
        return None, ((None, f"syntax error: {exc}"),)
    if offset:
        ast.increment_lineno(tree, offset)
    compile_fn = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    result = compile_fn(tree, filename=FILENAME, policy=SandboxPolicy)
    if result.errors:
        return None, tuple(_split_line(e) for e in result.errors)
    return result.code, ()


_LINE_PREFIX = re.compile(r"Line (\d+|None): (.*)", re.DOTALL)


def _split_line(error: str) -> tuple[int | None, str]:
    match = _LINE_PREFIX.fullmatch(error)
    if not match:
        return None, error
    line = None if match.group(1) == "None" else int(match.group(1))
    return line, match.group(2)


def syntax_errors(source: str, mode: Literal["exec", "eval"]) -> list[tuple[int | None, str]]:
    """Problems compiling ``source`` under the sandbox policy: (line within source, message).

    Empty when the source compiles. Catches syntax errors and everything the policy
    refuses before running (imports, names starting with ``_``, ``exec``/``eval``
    calls, class definitions, bare ``except:``, huge format widths).
    """
    if mode not in ("exec", "eval"):
        raise ValueError(f"mode must be 'exec' or 'eval', not {mode!r}")
    if not isinstance(source, str):
        return [(None, "the script is not text")]
    return list(_compile(source, mode)[1])


# --------------------------------------------------------------------------- guards


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) and not isinstance(value, bool) else 0


def _too_big(what: str) -> ScriptError:
    return ScriptError(f"the result of {what} would be too large")


def _check_sequence_len(length: int, what: str) -> None:
    if length > MAX_SEQUENCE:
        raise ScriptError(
            f"the result of {what} would have {length} items or characters "
            f"(at most {MAX_SEQUENCE} allowed)"
        )


_SEQUENCES = (str, bytes, list, tuple)
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def check_percent_format(fmt: str | bytes) -> None:
    """Refuse %-formatting with huge or computed (``*``) widths."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    for match in _PERCENT_FIELD.finditer(text.replace("%%", "")):
        for group in match.groups():
            if group == "*":
                raise ScriptError("'*' widths in % formatting are not allowed")
            if group is not None and int(group) > MAX_FORMAT_WIDTH:
                raise ScriptError(
                    f"format width {group} is too large (at most {MAX_FORMAT_WIDTH})"
                )


def _guard_add(left: Any, right: Any) -> None:
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        _check_sequence_len(len(left) + len(right), "+")


def _guard_mult(left: Any, right: Any) -> None:
    if isinstance(left, _SEQUENCES) and isinstance(right, int):
        _check_sequence_len(len(left) * max(right, 0), "*")
    elif isinstance(right, _SEQUENCES) and isinstance(left, int):
        _check_sequence_len(len(right) * max(left, 0), "*")
    elif _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
        raise _too_big("*")


def _guard_pow(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if abs(base) > 1 and base.bit_length() * exponent > MAX_INT_BITS:
            raise _too_big("**")


def _guard_lshift(value: Any, shift: Any) -> None:
    if isinstance(value, int) and isinstance(shift, int) and value:
        if _int_bits(value) + shift > MAX_INT_BITS:
            raise _too_big("<<")


def _guard_mod(left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes)):
        check_percent_format(left)


_BINOPS: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], None]]] = {
    "+": (operator.add, _guard_add),
    "*": (operator.mul, _guard_mult),
    "**": (operator.pow, _guard_pow),
    "<<": (operator.lshift, _guard_lshift),
    "%": (operator.mod, _guard_mod),
}

_INPLACE: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], None] | None]] = {
    "+=": (operator.iadd, _guard_add),
    "-=": (operator.isub, None),
    "*=": (operator.imul, _guard_mult),
    "/=": (operator.itruediv, None),
    "//=": (operator.ifloordiv, None),
    "%=": (operator.imod, _guard_mod),
    "**=": (operator.ipow, _guard_pow),
    "<<=": (operator.ilshift, _guard_lshift),
    ">>=": (operator.irshift, None),
    "|=": (operator.ior, None),
    "^=": (operator.ixor, None),
    "&=": (operator.iand, None),
    "@=": (operator.imatmul, None),
}


def guarded_binop(symbol: str, left: Any, right: Any) -> Any:
    """``left <symbol> right`` unless the result would be huge."""
    function, guard = _BINOPS[symbol]
    guard(left, right)
    return function(left, right)


def _guarded_inplacevar(symbol: str, target: Any, value: Any) -> Any:
    try:
        function, guard = _INPLACE[symbol]
    except KeyError:
        raise ScriptError(f"the operator {symbol} is not allowed") from None
    if guard is not None:
        guard(target, value)
    return function(target, value)


def _guarded_pow(base: Any, exponent: Any, modulus: Any = None) -> Any:
    if modulus is None:
        _guard_pow(base, exponent)
        return pow(base, exponent)
    if _int_bits(exponent) * max(_int_bits(modulus), 1) > _MAX_MODPOW_WORK:
        raise _too_big("pow()")
    return pow(base, exponent, modulus)


def _guarded_sum(iterable: Any, /, start: Any = 0) -> Any:
    """``sum``, linear and size-checked when it concatenates lists or tuples."""
    if not isinstance(start, (list, tuple)):
        return sum(iterable, start)
    items = list(iterable)
    kind = type(start)
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(
                f'can only concatenate {kind.__name__} (not "{type(item).__name__}") '
                f"to {kind.__name__}"
            )
    _check_sequence_len(len(start) + sum(len(item) for item in items), "sum()")
    result = list(start)
    for item in items:
        result.extend(item)
    return result if kind is list else tuple(result)


def _limited_range(*args: int) -> range:
    result = range(*args)
    try:
        size = len(result)
    except OverflowError:
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise ScriptError(f"range() is limited to {MAX_RANGE} items in scripts")
    return result


_PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})
_SIZE_CHECKED_STR_METHODS = _PADDING_METHODS | {"expandtabs", "replace", "join"}


def check_str_method_call(
    text: str | bytes, name: str, args: tuple, kwargs: Mapping, *, label: str | None = None
) -> None:
    """Refuse ``text.<name>(*args)`` when its result would exceed :data:`MAX_SEQUENCE`."""
    if name in _PADDING_METHODS:
        width = args[0] if args else kwargs.get("width", 0)
        if isinstance(width, int):
            _check_sequence_len(width, label or f"{name}()")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            _check_sequence_len(len(text) * max(tabsize, 1), "expandtabs()")
    elif name == "join" and len(args) == 1 and isinstance(args[0], (list, tuple)):
        items = args[0]
        total = sum(len(item) for item in items if isinstance(item, (str, bytes)))
        _check_sequence_len(total + len(text) * max(len(items) - 1, 0), "join()")
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, (str, bytes)) and isinstance(new, (str, bytes)):
            occurrences = len(text) // len(old) if old else len(text) + 1
            growth = max(len(new) - len(old), 0)
            _check_sequence_len(len(text) + occurrences * growth, "replace()")


def _size_checked_method(text: str | bytes, name: str, method: Callable) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        if name == "join" and len(args) == 1 and not kwargs:
            args = (list(args[0]),)  # the items are needed twice: count, then join
        check_str_method_call(text, name, args, kwargs)
        return method(*args, **kwargs)

    return call


_BLOCKED_ATTRIBUTES = frozenset({"mro", "format", "format_map"})


def _guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    """``obj.name`` for scripts: ``safer_getattr`` (raising when missing) plus a few refusals."""
    if isinstance(name, str) and name in _BLOCKED_ATTRIBUTES:
        raise ScriptError(f'access to the attribute "{name}" is not allowed in scripts')
    if default:
        value = safer_getattr(obj, name, default[0])
    else:
        value = safer_getattr(obj, name, _MISSING)
        if value is _MISSING:
            raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{name}'")
    if isinstance(obj, (str, bytes)) and name in _SIZE_CHECKED_STR_METHODS:
        return _size_checked_method(obj, name, value)
    return value


_MISSING = object()
_SUBSCRIPTABLE = (dict, list, tuple, str, bytes, range)


def _guarded_getitem(obj: Any, index: Any) -> Any:
    if isinstance(obj, _SUBSCRIPTABLE):
        return obj[index]
    raise ScriptError(f"'{type(obj).__name__}' objects cannot be indexed in scripts")


def _apply(function: Callable, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


# __build_class__: class definitions are refused; BaseException & co.: scripts must not
# be able to catch the internal interrupt; setattr/delattr: nothing a script may change
# has attributes (data is dicts and lists).
_EXCLUDED_BUILTINS = frozenset(
    {
        "__build_class__",
        "BaseException",
        "GeneratorExit",
        "KeyboardInterrupt",
        "SystemExit",
        "setattr",
        "delattr",
    }
)

_BUILTINS: dict[str, Any] = {k: v for k, v in safe_builtins.items() if k not in _EXCLUDED_BUILTINS}
_BUILTINS.pop("_getattr_", None)
_BUILTINS.update(
    {
        "len": len,
        "min": min,
        "max": max,
        "sum": _guarded_sum,
        "sorted": sorted,
        "reversed": reversed,
        "any": any,
        "all": all,
        "abs": abs,
        "round": round,
        "str": str,
        "int": int,
        "float": float,
        "bool": bool,
        "dict": dict,
        "list": list,
        "tuple": tuple,
        "set": set,
        "frozenset": frozenset,
        "enumerate": enumerate,
        "zip": zip,
        "map": map,
        "filter": filter,
        "range": _limited_range,
        "pow": _guarded_pow,
        "isinstance": isinstance,
    }
)

#: Builtins a script might reach for that are deliberately missing.
_UNAVAILABLE = frozenset(
    {
        "open", "exec", "eval", "compile", "globals", "locals", "vars", "getattr",
        "hasattr", "dir", "iter", "next", "type", "object", "input", "breakpoint",
        "help", "memoryview", "bytearray", "super", "classmethod", "staticmethod",
        "property", "exit", "quit", "BaseException", "SystemExit", "KeyboardInterrupt",
    }
)  # fmt: skip


# ----------------------------------------------------------------------- time limit


class _Run:
    """Deadline and memory bookkeeping of one evaluation; ``tick`` is ``_tick_``."""

    __slots__ = ("deadline", "active", "_next_memory_check", "_memory_baseline")

    def __init__(self, time_limit: float):
        start = time.monotonic()
        self.deadline = start + time_limit
        self.active = True
        self._memory_baseline = _resident_bytes()
        self._next_memory_check = start + _MEMORY_CHECK_INTERVAL

    def tick(self) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise _Interrupt("timeout")
        if now >= self._next_memory_check:
            self._next_memory_check = now + _MEMORY_CHECK_INTERVAL
            if self._memory_baseline is not None:
                resident = _resident_bytes()
                if resident is not None and resident - self._memory_baseline > MEMORY_LIMIT_BYTES:
                    raise _Interrupt("memory")

    def getiter(self, iterable: Any) -> Iterator[Any]:
        tick = self.tick
        tick()
        for item in iterable:
            tick()
            yield item


try:
    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
except (ValueError, AttributeError, OSError):  # pragma: no cover - not POSIX
    _PAGE_SIZE = 4096


def _resident_bytes() -> int | None:
    """Current resident set size of this process (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


class _AlarmBackstop:
    """``SIGALRM`` after the deadline (main thread only), restoring the previous state.

    Not used when another ``ITIMER_REAL`` timer is already armed (it is left alone).
    The handler only raises while the run is active.
    """

    def __init__(self, run: _Run, delay: float):
        self.run = run
        self.delay = delay
        self.installed = False
        self.previous_handler: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.run.active:
            raise _Interrupt("timeout")

    def __enter__(self) -> _AlarmBackstop:
        if not hasattr(signal, "setitimer") or threading.current_thread() is not (
            threading.main_thread()
        ):
            return self
        if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
            return self  # someone else's timer is running: leave it alone
        if signal.getsignal(signal.SIGALRM) is None:
            return self  # a handler installed outside Python: cannot be restored
        self.previous_handler = signal.signal(signal.SIGALRM, self._handler)
        self.installed = True
        signal.setitimer(signal.ITIMER_REAL, self.delay)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.installed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous_handler)
            self.installed = False


# -------------------------------------------------------------------------- running


def _format_limit(time_limit: float) -> str:
    return f"{float(time_limit)} s"


def _error_line(tb: Any) -> int | None:
    line = None
    for frame in traceback.extract_tb(tb):
        if frame.filename == FILENAME:
            line = frame.lineno
    return line


def _describe(exc: BaseException) -> str:
    if isinstance(exc, NameError):
        name = getattr(exc, "name", None)
        if name in _UNAVAILABLE or name in _EXCLUDED_BUILTINS:
            return f"'{name}' is not available in scripts"
        return str(exc)
    if isinstance(exc, KeyError):
        return f"key {exc.args[0]!r} is missing (KeyError)" if exc.args else "KeyError"
    if isinstance(exc, RecursionError):
        return "the script called itself too deeply (RecursionError)"
    if isinstance(exc, MemoryError):
        return "the script used too much memory"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _compiled(source: str, mode: Mode, show_line: bool) -> CodeType:
    if not isinstance(source, str):
        raise ScriptError(f"the {_noun(mode)} is not text ({type(source).__name__})")
    code, errors = _compile(source, mode)
    if code is None:
        line, message = errors[0] if errors else (None, f"the {_noun(mode)} does not compile")
        if len(errors) > 1:
            more = len(errors) - 1
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ScriptError(message, line=line, show_line=show_line)
    return code


def _noun(mode: Mode) -> str:
    return "script" if mode == "exec" else "expression"


def _check_helpers(context: Mapping, helpers: Mapping, extra: Mapping | None) -> None:
    for source, label in ((context, "task data field"), (extra or {}, "data object")):
        clash = sorted(k for k in source if isinstance(k, str) and k in helpers)
        if clash:
            names = ", ".join(f"'{k}'" for k in clash)
            raise ScriptError(
                f"{label} {names} has the name of a script helper function; "
                "rename the field or variable (helper names are reserved)"
            )


def _namespace(data: Mapping, helpers: Mapping, extra: Mapping | None, run: _Run) -> dict:
    namespace: dict[str, Any] = {}
    for source in (extra or {}, data):
        for key, value in source.items():
            # keys starting with "_" cannot be named by a script, and must never
            # replace the guard hooks below
            if isinstance(key, str) and not key.startswith("_"):
                namespace[key] = value
    namespace.update(helpers)
    namespace.update(
        {
            "__builtins__": _BUILTINS,
            "__name__": "script",
            "_getattr_": _guarded_getattr,
            "_getitem_": _guarded_getitem,
            "_getiter_": run.getiter,
            "_write_": full_write_guard,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_inplacevar_": _guarded_inplacevar,
            "_apply_": _apply,
            "_print_": PrintCollector,
            "_binop_": guarded_binop,
            "_tick_": run.tick,
        }
    )
    return namespace


def _backstop_delay(time_limit: float) -> float:
    # later than the deadline, so that the ticks normally stop the script
    return time_limit * 1.1 + 0.05


def _interrupt_error(
    exc: _Interrupt, noun: str, time_limit: float, line: int | None, show_line: bool
) -> ScriptError:
    if exc.reason == "memory":
        return ScriptError(
            f"{noun} used more than {MEMORY_LIMIT_BYTES // (1024 * 1024)} MB of memory "
            "and was stopped",
            line=line,
            show_line=show_line,
        )
    return ScriptTimeout(
        f"{noun} ran longer than {_format_limit(time_limit)} and was stopped",
        line=line,
        show_line=show_line,
    )


def _run(
    code: CodeType,
    namespace: dict,
    run: _Run,
    time_limit: float,
    mode: Mode,
    show_line: bool,
) -> Any:
    try:
        with _AlarmBackstop(run, _backstop_delay(time_limit)):
            try:
                return eval(code, namespace)  # noqa: S307 - restricted code, guarded globals
            finally:
                run.active = False
    except _Interrupt as exc:
        line = _error_line(exc.__traceback__)
        raise _interrupt_error(exc, _noun(mode), time_limit, line, show_line) from None
    except ScriptError as exc:  # raised by a guard or a helper: keep its message
        if exc.line is None:
            exc.line = _error_line(exc.__traceback__)
            exc._show_line = show_line
        raise
    except Exception as exc:
        raise ScriptError(
            _describe(exc), line=_error_line(exc.__traceback__), show_line=show_line
        ) from exc


@contextlib.contextmanager
def limits(time_limit: float = DEFAULT_TIME_LIMIT, noun: str = "script") -> Iterator[Callable]:
    """The time (and memory) limit for other sandboxed code, e.g. templates.

    Yields the tick function: the guarded code must call it regularly (every loop
    item, every call); past the deadline it stops the code, and the ``with`` block
    raises :class:`ScriptTimeout` ("<noun> ran longer than ... and was stopped"). In
    the main thread a ``SIGALRM`` backstop also applies.
    """
    _check_time_limit(time_limit)
    run = _Run(time_limit)
    try:
        with _AlarmBackstop(run, _backstop_delay(time_limit)):
            try:
                yield run.tick
            finally:
                run.active = False
    except _Interrupt as exc:
        raise _interrupt_error(exc, noun, time_limit, None, False) from None


def _check_time_limit(time_limit: float) -> None:
    if not time_limit > 0:
        raise ValueError("time_limit must be positive")


def evaluate(
    expression: str,
    context: Mapping[str, Any],
    helpers: Mapping[str, Callable],
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate a condition or expression against task data and return its value.

    ``context`` (task data) is not changed, not even by a method call in the
    expression. ``extra`` holds further read-only names (e.g. data objects); task
    data wins over them. Raises :class:`ScriptError` (or :class:`ScriptTimeout`).
    """
    _check_time_limit(time_limit)
    show_line = isinstance(expression, str) and "\n" in expression.strip()
    code = _compiled(expression, "eval", show_line)
    _check_helpers(context, helpers, extra)
    run = _Run(time_limit)
    namespace = _namespace(
        copy.deepcopy(dict(context)), helpers, copy.deepcopy(dict(extra or {})), run
    )
    return _run(code, namespace, run, time_limit, "eval", show_line)


def execute(
    script: str,
    context: dict[str, Any],
    helpers: Mapping[str, Callable],
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Run a script and update ``context`` in place with the variables it assigned.

    The script sees task data as variables and runs on a deep copy of it: only when it
    finishes without error are its variables applied to ``context`` (new and changed
    values set, deleted ones removed). Functions and generators it defines are not
    kept; any other value must be JSON-like (None, bool, int, float, str, list, dict
    with str keys; tuples become lists), otherwise the script fails. Names starting
    with ``_`` and helper names are never written. ``extra`` names (e.g. data objects)
    are readable but never written back unless they are also task data.
    """
    _check_time_limit(time_limit)
    show_line = isinstance(script, str) and "\n" in script.strip()
    code = _compiled(script, "exec", show_line)
    _check_helpers(context, helpers, extra)
    run = _Run(time_limit)
    visible = {k for k in context if isinstance(k, str) and not k.startswith("_")}
    namespace = _namespace(
        copy.deepcopy(dict(context)), helpers, copy.deepcopy(dict(extra or {})), run
    )
    _run(code, namespace, run, time_limit, "exec", show_line)

    for name, helper in helpers.items():
        if namespace.get(name) is not helper:
            raise ScriptError(
                f"the script assigned to '{name}', which is the name of a script helper "
                "function; use another variable name"
            )
    updates: dict[str, Any] = {}
    for name, value in namespace.items():
        if name.startswith("_") or name in helpers:
            continue
        if extra and name in extra and name not in visible:
            continue
        if name in visible and _same(value, context[name]):
            continue
        if _is_code(value):
            continue
        updates[name] = _jsonable(value, name)
    removed = [k for k in visible if k not in namespace]
    for key in removed:
        del context[key]
    context.update(updates)


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _is_code(value: Any) -> bool:
    return callable(value) or isinstance(value, (GeneratorType, ModuleType, FunctionType))


def _jsonable(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ScriptError(
                    f"variable '{path}' holds a dict with the key {key!r}; task data "
                    "can only store dicts with text keys"
                )
            result[key] = _jsonable(item, f"{path}[{key!r}]")
        return result
    raise ScriptError(
        f"variable '{path}' holds a {type(value).__name__}, which cannot be stored in "
        "task data (use None, True/False, numbers, text, lists or dicts)"
    )


def clear_cache() -> None:
    """Forget compiled scripts (tests)."""
    _compile.cache_clear()


if sys.implementation.name != "cpython":  # pragma: no cover
    raise ImportError("the script sandbox relies on CPython (RestrictedPython)")
