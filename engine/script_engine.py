"""SpiffWorkflow 3.2.0 script engine that runs everything through :mod:`engine.sandbox`.

SpiffWorkflow evaluates Python for script tasks, pre/post scripts, gateway and
conditional-event conditions, timer expressions, multi-instance cardinalities and
conditions, message payloads and DMN expressions. All of them go through
``PythonScriptEngine.evaluate``/``execute`` and from there to ``environment``; process
completion conditions and message correlation call ``environment.evaluate`` directly.
Both levels are replaced here, so nothing from a BPMN file reaches plain
``eval``/``exec``.

Failures become a ``WorkflowTaskException`` (what SpiffWorkflow and its callers
expect) whose message names the task and carries the sandbox's message, e.g.
``Script Task "Compute deadline": script tried to import a module, which is not
allowed``. The original :class:`~engine.sandbox.ScriptError` is its ``__cause__``.

Helpers are kept out of the task-data namespace: they are passed to the sandbox apart
from the data, and a data field or variable named like a helper is refused with a
clear error instead of silently shadowing the helper.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine import sandbox
from engine.sandbox import DEFAULT_TIME_LIMIT, ScriptError

__all__ = [
    "SandboxEnvironment",
    "SandboxedScriptEngine",
    "ScriptTaskError",
    "make_script_engine",
    "task_exception",
]


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluates and executes with :mod:`engine.sandbox`; helpers are not task data."""

    def __init__(self, helpers: Mapping[str, Callable], time_limit: float = DEFAULT_TIME_LIMIT):
        # No environment globals: SpiffWorkflow's TaskDataEnvironment would merge them
        # into task data; here the helpers reach the sandbox separately.
        super().__init__({})
        if not time_limit > 0:
            raise ValueError("time_limit must be positive")
        self.helpers: dict[str, Callable] = dict(helpers)
        self.time_limit = time_limit

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None):
        return sandbox.evaluate(
            expression,
            context,
            self.helpers,
            time_limit=self.time_limit,
            extra=external_context,
        )

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        sandbox.execute(
            script,
            context,
            self.helpers,
            time_limit=self.time_limit,
            extra=external_context,
        )
        return True

    def call_service(self, context: dict, **kwargs: Any):
        raise ScriptError("service tasks are not supported by this engine")


class SandboxedScriptEngine(PythonScriptEngine):
    """``PythonScriptEngine`` whose errors carry the sandbox's clear message."""

    environment: SandboxEnvironment

    def validate(self, expression: str) -> None:
        # SpiffWorkflow's DMN engine calls this to test whether text parses and expects
        # a SyntaxError when it does not; policy violations are refused too.
        ast.parse(expression)
        errors = sandbox.syntax_errors(expression, "exec")
        if errors:
            line, message = errors[0]
            raise ScriptError(message, line=line)

    def evaluate(self, task, expression: str, external_context: dict | None = None):
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except SpiffWorkflowException:
            raise
        except Exception as exc:
            raise task_exception(task, expression, exc) from exc

    def execute(self, task, script: str, external_context: dict | None = None) -> bool:
        try:
            return self.environment.execute(script, task.data, external_context or {})
        except SpiffWorkflowException:
            raise
        except Exception as exc:
            raise task_exception(task, script, exc) from exc

    def call_service(self, task, **kwargs: Any):
        # PythonScriptEngine.call_service in 3.2.0 fails with NameError ('script').
        raise ScriptTaskError(
            f"{_task_label(task)}: service tasks are not supported by this engine",
            task=task,
        )


class ScriptTaskError(WorkflowTaskException):
    """A script, condition or expression of a task failed in the sandbox.

    Its text is the message and SpiffWorkflow's notes (e.g. "Error occurred in the
    Pre-Script"), without the trailing ". " SpiffWorkflow adds when there are none.
    """

    def __str__(self) -> str:
        text = Exception.__str__(self)
        return ". ".join([text, *self.notes]) if self.notes else text


def _task_label(task) -> str:
    spec = task.task_spec
    kind = getattr(spec, "description", None) or "Task"
    name = getattr(spec, "bpmn_name", None) or spec.name
    return f'{kind} "{name}"'


def task_exception(task, source: str, exc: BaseException) -> ScriptTaskError:
    """A ``WorkflowTaskException`` naming the task, with the sandbox's message."""
    if isinstance(exc, ScriptError):
        message = str(exc)
        line = exc.line
    else:  # not expected: the sandbox wraps everything, but never lose an error
        message = f"{type(exc).__name__}: {exc}"
        line = None
    error_line = None
    if line and isinstance(source, str):
        lines = source.splitlines()
        if 0 < line <= len(lines):
            error_line = lines[line - 1]
    error = ScriptTaskError(
        f"{_task_label(task)}: {message}",
        task=task,
        exception=exc,
        line_number=line,
        error_line=error_line,
    )
    if isinstance(exc.__cause__, NameError):
        hint = WorkflowTaskException.did_you_mean_from_name_error(exc.__cause__, list(task.data))
        if hint:
            error.add_note(hint.strip())
    return error


def make_script_engine(
    helpers: Mapping[str, Callable], time_limit: float = DEFAULT_TIME_LIMIT
) -> PythonScriptEngine:
    """The script engine for every workflow: sandboxed, with ``helpers`` available."""
    return SandboxedScriptEngine(environment=SandboxEnvironment(helpers, time_limit))
