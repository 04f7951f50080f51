"""Jinja templates from process definitions: task instructions and mail texts.

``instructionsForEndUser`` and mail bodies come from uploaded BPMN files, so they are
untrusted. They are rendered only with Jinja's ``ImmutableSandboxedEnvironment`` (a
``SandboxedEnvironment`` that also refuses to modify lists and dicts), never with a
plain ``Environment``:

* attributes starting with ``_`` and Python internals (``__class__``, ``__globals__``,
  ``mro``, function and frame attributes ...) are refused with a ``SecurityError``;
  ``str.format`` is refused (use the ``format`` filter);
* only the globals ``range`` (at most 100 000 items), ``dict``, ``namespace``,
  ``cycler`` and ``joiner``; no loader, so no ``include``/``import``/``extends``;
* a missing variable is an error (``StrictUndefined``) rather than an empty string;
* a time limit (default 1 s): every ``for`` loop item, function call and binary
  operator ticks the limit of :func:`engine.sandbox.limits`; output is limited to
  :data:`MAX_OUTPUT` characters, ``* ** + %`` refuse huge results and the padding
  filters refuse huge widths.

Compiled templates are cached by source text. Every problem is raised as
:class:`TemplateRenderError` with a message for the process owner.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine import sandbox

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "MAX_OUTPUT",
    "TemplateRenderError",
    "render_instructions",
    "render_mail",
    "template_errors",
]

DEFAULT_TIME_LIMIT = 1.0
#: Longest text a template may produce.
MAX_OUTPUT = 1_000_000


class TemplateRenderError(Exception):
    """A template from a process definition could not be compiled or rendered."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


# ----------------------------------------------------------------- guarded runtime

_TICK: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "template_tick", default=None
)


def _tick() -> None:
    tick = _TICK.get()
    if tick is not None:
        tick()


def loop_guard(iterable: Any) -> Iterator[Any]:
    """Wraps every ``{% for %}`` iterable: one tick per item."""
    _tick()
    for item in iterable:
        _tick()
        yield item


def _size_guarded(check: Callable[..., None], function: Callable) -> Callable:
    # A filter marked with pass_context/pass_eval_context/pass_environment gets that
    # object first; the checks only look at the filter's own arguments.
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(function)  # keeps jinja's pass_* marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        replacement = check(*args[skip:], **kwargs)
        if replacement is not None:  # e.g. a generator the check had to consume
            args = (*args[:skip], replacement, *args[skip + 1 :])
        return function(*args, **kwargs)

    return guarded


def _width_check(name: str) -> Callable[..., None]:
    def check(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> None:
        width = kwargs.get("width", width)
        if isinstance(width, str):  # indent(" > "): a prefix per line
            width = len(width) * len(str(value))
        if isinstance(width, int):
            sandbox.check_str_method_call("", "center", (width,), {}, label=f"{name}()")

    return check


def _check_format(value: Any, *args: Any, **kwargs: Any) -> None:
    sandbox.check_percent_format(str(value))


def _check_replace(s: Any, old: Any = "", new: Any = "", *args: Any, **kwargs: Any) -> None:
    sandbox.check_str_method_call(str(s), "replace", (str(old), str(new)), {})


def _check_slices(value: Any, slices: Any = 1, *args: Any, **kwargs: Any) -> None:
    if isinstance(slices, int) and slices > sandbox.MAX_RANGE:
        raise sandbox.ScriptError(f"slice() is limited to {sandbox.MAX_RANGE} slices")


def _check_json_indent(value: Any, indent: Any = None, *args: Any, **kwargs: Any) -> None:
    indent = kwargs.get("indent", indent)
    if isinstance(indent, int) and indent > 64:
        raise sandbox.ScriptError("tojson() indent is limited to 64")


def _check_join(value: Any, separator: Any = "", *args: Any, **kwargs: Any) -> list | None:
    if isinstance(value, (str, Undefined)) or not isinstance(value, Iterable):
        return None
    items = value if isinstance(value, (list, tuple)) else list(value)
    sandbox.check_str_method_call(str(kwargs.get("d", separator)), "join", (items,), {})
    return None if items is value else items


_FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "center": _width_check("center"),
    "indent": _width_check("indent"),
    "format": _check_format,
    "replace": _check_replace,
    "slice": _check_slices,
    "tojson": _check_json_indent,
    "join": _check_join,
}


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, autoescape: bool):
        super().__init__(autoescape=autoescape, undefined=StrictUndefined, loader=None)
        self.globals.pop("lipsum", None)  # generates text on demand: not needed
        for name, check in _FILTER_CHECKS.items():
            if name in self.filters:
                self.filters[name] = _size_guarded(check, self.filters[name])

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr == "mro":
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None

        def refused(*args: Any, **kwargs: Any) -> str:
            raise SecurityError("str.format is not allowed in templates; use the format filter")

        return refused

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        return sandbox.guarded_binop(operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (str, bytes)):
            name = getattr(__obj, "__name__", "")
            if name == "join" and len(args) == 1 and not isinstance(args[0], (list, tuple)):
                args = (list(args[0]),)  # needed twice: to count, then to join
            sandbox.check_str_method_call(owner, name, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guard = f"{__name__}.loop_guard"
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.ImportedName(guard, lineno=loop.lineno),
                [loop.iter],
                [],
                None,
                None,
                lineno=loop.lineno,
            )
        return tree


_HTML = _Environment(autoescape=True)
_TEXT = _Environment(autoescape=False)


@functools.lru_cache(maxsize=1024)
def _compiled(source: str, html: bool):
    environment = _HTML if html else _TEXT
    return environment.from_string(source)


def _template(source: str, html: bool):
    if not isinstance(source, str):
        raise TemplateRenderError(f"the template is not text ({type(source).__name__})")
    try:
        return _compiled(source, html)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(
            f"template syntax error: {exc.message}", line=exc.lineno
        ) from exc
    except TemplateError as exc:
        raise TemplateRenderError(f"template error: {exc.message or exc}") from exc


def template_errors(source: str) -> list[tuple[int | None, str]]:
    """Problems compiling a template (for deploy-time checks); [] when it compiles."""
    try:
        _template(source, html=True)
    except TemplateRenderError as exc:
        return [(exc.line, exc.message)]
    return []


def _render(
    source: str, data: Mapping[str, Any], *, html: bool, time_limit: float
) -> str:
    template = _template(source, html)
    variables = {k: v for k, v in (data or {}).items() if isinstance(k, str)}
    parts: list[str] = []
    size = 0
    try:
        with sandbox.limits(time_limit, noun="template") as tick:
            token = _TICK.set(tick)
            try:
                for chunk in template.generate(variables):
                    tick()
                    size += len(chunk)
                    if size > MAX_OUTPUT:
                        raise TemplateRenderError(
                            f"template output is longer than {MAX_OUTPUT} characters"
                        )
                    parts.append(chunk)
            finally:
                _TICK.reset(token)
    except TemplateRenderError:
        raise
    except sandbox.ScriptError as exc:
        raise TemplateRenderError(exc.message, line=exc.line) from exc
    except SecurityError as exc:
        raise TemplateRenderError(
            f"template tried something unsafe, which is refused: {exc}", line=_line(exc)
        ) from exc
    except UndefinedError as exc:
        raise TemplateRenderError(f"template error: {exc}", line=_line(exc)) from exc
    except TemplateError as exc:
        raise TemplateRenderError(f"template error: {exc}", line=_line(exc)) from exc
    except RecursionError as exc:
        raise TemplateRenderError("template called itself too deeply") from exc
    except Exception as exc:
        raise TemplateRenderError(
            f"template error: {type(exc).__name__}: {exc}", line=_line(exc)
        ) from exc
    return "".join(parts)


def _line(exc: BaseException) -> int | None:
    """The template line of the innermost template frame in the traceback.

    Jinja rewrites tracebacks so that template frames have the file name
    ``<template>`` and the template's line number.
    """
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_instructions(
    source: str, data: Mapping[str, Any], *, time_limit: float = DEFAULT_TIME_LIMIT
) -> str:
    """Render task instructions for a web page: every value is HTML-escaped."""
    return _render(source, data, html=True, time_limit=time_limit)


def render_mail(
    source: str, data: Mapping[str, Any], *, time_limit: float = DEFAULT_TIME_LIMIT
) -> str:
    """Render a plain-text mail body (no HTML escaping)."""
    return _render(source, data, html=False, time_limit=time_limit)


def clear_cache() -> None:
    """Forget compiled templates (tests)."""
    _compiled.cache_clear()
