"""Running workflows in memory: specs, the sandboxed script engine, steps, and caches.

Parsed specs are cached per definition version (they never change). Deserialized
workflows are cached per instance together with the ``lock_version`` they were saved
under: a unit of work *takes* the cached workflow (so no two threads ever share one),
uses it only if the row it locked still has that version, and puts it back only after
its transaction committed. A failed transaction therefore never leaves a half-run
workflow in the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task, TaskState
from sqlalchemy import Connection, select

from engine import clock, sandbox, spiff
from engine.calendar import BusinessCalendar, parse_instant
from engine.fast_workflow import EngineWorkflow
from engine.models import ProcessDefinition
from engine.script_engine import make_script_engine
from engine.script_helpers import script_helpers

#: Bound on loops in a model: SpiffWorkflow 3.2.0 stops iterating a task tree at depth
#: 1000 (see notes), so an instance that grows past this is stopped with an error.
MAX_TASKS_PER_INSTANCE = 5000


class _LRU:
    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def pop(self, key):
        with self._lock:
            return self._items.pop(key, None)

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_SPECS = _LRU(128)
_SOURCES = _LRU(128)
_WORKFLOWS = _LRU(256)


def specs_for(sha256: str, specs_json: str) -> tuple[Any, dict]:
    """The parsed spec of a definition version (keyed by its sources' hash), loaded once.

    ``specs_json`` is only read when the cache misses (see ``specs_json_for``).
    """
    specs = _SPECS.get(sha256)
    if specs is None:
        specs = spiff.loads_specs(specs_json)
        _SPECS.put(sha256, specs)
    return specs


def specs_json_for(conn: Connection, definition_id: int, sha256: str) -> str:
    """The serialized specs of a definition, read only when the spec cache misses."""
    if _SPECS.get(sha256) is not None:
        return ""
    return conn.scalar(
        select(ProcessDefinition.specs_json).where(ProcessDefinition.id == definition_id))


def sources_for(conn: Connection, definition_id: int, sha256: str) -> dict[str, str]:
    """The files of a definition version (BPMN, DMN, forms), cached by their hash."""
    sources = _SOURCES.get(sha256)
    if sources is None:
        sources = conn.scalar(
            select(ProcessDefinition.sources).where(ProcessDefinition.id == definition_id))
        _SOURCES.put(sha256, sources)
    return sources


class LazyCalendar:
    """A business calendar loaded on first use: most steps compute no deadline."""

    def __init__(self, load: Callable[[], BusinessCalendar]):
        self._load = load
        self._calendar: BusinessCalendar | None = None

    def __getattr__(self, name: str):
        if self._calendar is None:
            self._calendar = self._load()
        return getattr(self._calendar, name)


class _EngineClock:
    @staticmethod
    def now() -> datetime:
        return clock.now()


def script_engine_for(calendar):
    return make_script_engine(script_helpers(calendar, _EngineClock()))


def new_workflow(specs: tuple[Any, dict], calendar, data: dict) -> BpmnWorkflow:
    spec, subprocess_specs = specs
    workflow = EngineWorkflow(spec, subprocess_specs, script_engine=script_engine_for(calendar))
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(**data)
    return workflow


def take_cached(instance_id: int, lock_version: int) -> tuple[BpmnWorkflow, set[str]] | None:
    """The cached workflow of an instance and the ids of its 'ready' task rows, if the
    cache holds the version the caller locked; the entry leaves the cache either way."""
    cached = _WORKFLOWS.pop(instance_id)
    if cached is not None and cached[0] == lock_version:
        return cached[1], cached[2]
    return None


def put_cached(instance_id: int, lock_version: int, workflow: BpmnWorkflow,
               ready_rows: set[str]) -> None:
    _WORKFLOWS.put(instance_id, (lock_version, workflow, ready_rows))


def clear_caches() -> None:
    _SPECS.clear()
    _SOURCES.clear()
    _WORKFLOWS.clear()


def load_workflow(state: str, specs: tuple[Any, dict], calendar) -> BpmnWorkflow:
    spec, subprocess_specs = specs
    workflow = spiff.loads_state(state, spec, subprocess_specs)
    workflow.script_engine = script_engine_for(calendar)
    return workflow


def attach_calendar(workflow: BpmnWorkflow, calendar) -> None:
    """Scripts of this step use ``calendar`` (closure days may have changed since caching)."""
    workflow.script_engine = script_engine_for(calendar)


@dataclass(frozen=True)
class StepError:
    message: str
    task_id: str | None
    bpmn_id: str | None


#: Set by the engine on every completed user task: who completed it (a username).
#: Scripts read it (e.g. to put the approver on a record); a form cannot set it.
COMPLETED_BY = "completed_by"


def run_steps(workflow: BpmnWorkflow, human_task: Task | None = None,
              data: dict | None = None, completed_by: str | None = None) -> StepError | None:
    """Run a human task (if given) and then every engine step that follows.

    An exception raised by a script, condition or timer is caught and returned as a
    StepError; the failing task is left in the ERROR state, so the workflow can still
    be saved and loaded.
    """
    current: Task | None = human_task
    try:
        if human_task is not None:
            values = dict(data or {})
            if completed_by is not None:
                values[COMPLETED_BY] = completed_by
            if values:
                human_task.set_data(**values)
            human_task.run()
        current = None
        workflow.refresh_timers()
        workflow.do_engine_steps()
    except Exception as exc:  # noqa: BLE001 - any script failure must be recorded
        return _step_error(workflow, exc, current)
    if len(workflow.tasks) > MAX_TASKS_PER_INSTANCE:
        return StepError(
            f"the instance has more than {MAX_TASKS_PER_INSTANCE} tasks: a loop in the "
            "model does not end; it was stopped",
            None,
            None,
        )
    return None


def _step_error(workflow: BpmnWorkflow, exc: Exception, current: Task | None) -> StepError:
    failed = getattr(exc, "task", None) or current
    if failed is None:
        errored = workflow.get_tasks(state=TaskState.ERROR)
        failed = errored[0] if errored else None
    message = str(exc) or exc.__class__.__name__
    if isinstance(exc, sandbox.ScriptError):
        message = str(exc)
    if failed is not None:
        if not failed.has_state(TaskState.ERROR) and not failed.has_state(TaskState.FINISHED_MASK):
            failed.error()
        label = failed.task_spec.bpmn_name or failed.task_spec.name
        if label not in message:
            message = f'{message} (in "{label}")'
        return StepError(message, str(failed.id), failed.task_spec.name)
    return StepError(message, None, None)


def ready_human_tasks(workflow: BpmnWorkflow) -> list[Task]:
    """READY user/manual tasks of the workflow and its subprocesses.

    Same result as ``get_tasks(state=READY, manual=True)``, without walking the tree:
    a scan of the task maps costs a fraction of SpiffWorkflow's iterator.
    """
    ready = TaskState.READY
    return [
        task
        for wf in (workflow, *workflow.subprocesses.values())
        for task in wf.tasks.values()
        if task.state == ready and task.task_spec.manual
    ]


def next_timer_due(workflow: BpmnWorkflow) -> datetime | None:
    """The earliest due time of the instance's waiting timers (None if it waits on none)."""
    due: list[datetime] = []
    for event in workflow.waiting_events():
        if "Time" not in event.event_type or not event.value:
            continue
        try:
            when = TimerEventDefinition.get_datetime(event.value)
        except Exception:  # noqa: BLE001 - a cycle/duration value that is not a date
            continue
        due.append(parse_instant(when) if when.tzinfo else when.replace(tzinfo=clock.now().tzinfo))
    return min(due) if due else None


def task_due_at(task: Task) -> datetime | None:
    """Due time of a human task from its ``dueAt`` property: an expression on task data.

    Evaluated by the workflow's sandboxed script engine (helpers included). A failing
    expression leaves the task without a due time rather than stopping the case; deploy
    validation has already checked its syntax.
    """
    expression = task.task_spec.extensions.get("properties", {}).get("dueAt")
    if not expression:
        return None
    try:
        value = task.workflow.script_engine.evaluate(task, expression)
        return parse_instant(value) if value else None
    except Exception:  # noqa: BLE001 - see docstring
        return None


def is_finished(workflow: BpmnWorkflow) -> bool:
    return workflow.is_completed()
