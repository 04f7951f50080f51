"""SpiffWorkflow 3.2.0 glue: the parser, and serialization with the spec stored apart.

A parsed spec is serialized once per definition version (``dumps_specs``); an
instance's state is serialized without it (``dumps_state``) and re-joined to the
cached spec on load (``loads_state``). This keeps instance blobs small and makes a
load/save cycle cost only the task tree.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnSubWorkflowConverter,
    BpmnWorkflowConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task, TaskState

from engine.fast_workflow import EngineSubWorkflow, EngineWorkflow

SERIALIZER_VERSION_KEY = BpmnWorkflowSerializer.VERSION_KEY
_FINISHED = TaskState.FINISHED_MASK


class _SpecFreeWorkflowConverter(BpmnWorkflowConverter):
    """Converts a top-level workflow without its spec and subprocess specs."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict, spec=None, subprocess_specs=None) -> BpmnWorkflow:
        if spec is None:
            raise ValueError("a stored instance state needs its definition's spec to load")
        workflow = self.target_class(spec, subprocess_specs or {}, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _state_config() -> dict:
    """SpiffWorkflow's converters, the top-level workflow's without its specs, and the
    engine's workflow classes (engine/fast_workflow.py) registered under SpiffWorkflow's
    typenames after SpiffWorkflow's own: states stay exactly SpiffWorkflow's, and a
    restored state is made of the engine's classes."""

    def named(converter, typename: str):
        return lambda target_class, registry: converter(target_class, registry, typename)

    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = _SpecFreeWorkflowConverter
    config[EngineWorkflow] = named(_SpecFreeWorkflowConverter, "BpmnWorkflow")
    config[EngineSubWorkflow] = named(BpmnSubWorkflowConverter, "BpmnSubWorkflow")
    return config


_SPEC_SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
_STATE_SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_state_config()))


def uncached_state_serializer() -> BpmnWorkflowSerializer:
    """SpiffWorkflow's own converters, spec left out (what ``dumps_state`` is tested against)."""
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_state_config()))


def new_parser(validate: bool = True) -> SpiffBpmnParser:
    """A parser that checks every file against the BPMN XSD (plus Spiff's extensions)."""
    return SpiffBpmnParser(validator=VALIDATOR if validate else None)


def dumps_specs(spec, subprocess_specs: dict) -> str:
    """Serialize a process spec and the specs of every process it calls."""
    reg = _SPEC_SERIALIZER.registry
    return json.dumps(
        {
            "spec": reg.convert(spec),
            "subprocess_specs": {name: reg.convert(s) for name, s in subprocess_specs.items()},
        }
    )


def loads_specs(text: str) -> tuple[Any, dict]:
    dct = json.loads(text)
    reg = _SPEC_SERIALIZER.registry
    spec = reg.restore(dct["spec"])
    subs = {name: reg.restore(s) for name, s in dct["subprocess_specs"].items()}
    return spec, subs


def _orjson_default(registry):
    """The fallback of SpiffWorkflow's JSON encoder (helpers/encoder.py), for orjson."""

    def default(obj):
        typename = registry.typenames.get(type(obj))
        if typename is not None:
            return registry.convert_to_dict[typename](obj)
        if callable(obj) or isinstance(obj, ModuleType):
            return None
        if isinstance(obj, set):
            return list(obj)
        raise TypeError(f"{type(obj).__name__} cannot be stored in a process instance")

    return default


# Datetimes go through the registry (as SpiffWorkflow's own encoder does), not orjson.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


class _StateWriter:
    """Builds the dict of an instance state in one pass: the dict SpiffWorkflow 3.2.0's
    converters make (``TaskConverter``, ``BpmnSubWorkflowConverter``, and
    ``BpmnWorkflowConverter`` without the specs), in its encoder mode, without going
    through the registry for every task and subprocess.

    Parts that no longer change are encoded once and then copied as ``orjson.Fragment``
    at every later save:

    - a finished task (completed, cancelled, errored), until its state does; the key
      holds what could still move: the state-change time, the links and the size of
      the internal data;
    - a completed subprocess (a finished stage).

    tests/test_spiff.py checks that the result equals SpiffWorkflow's own output after
    every step of several processes and every policy scenario.
    """

    def __init__(self, registry):
        self.registry = registry
        self.default = _orjson_default(registry)
        self.typenames = registry.typenames
        self.task_typename = registry.typenames[Task]

    def workflow(self, workflow: BpmnWorkflow) -> dict:
        dct = self._common(workflow)
        dct["subprocesses"] = {str(key): self._subworkflow(subprocess)
                               for key, subprocess in workflow.subprocesses.items()}
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        dct["typename"] = self.typenames[type(workflow)]
        return dct

    def _common(self, workflow) -> dict:
        task = self._task
        last_task = workflow.last_task
        return {
            "data": self.registry.clean(workflow.data),
            "correlations": workflow.correlations,
            "last_task": str(last_task.id) if last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": {str(key): task(value) for key, value in workflow.tasks.items()},
            "root": str(workflow.task_tree.id),
        }

    def _subworkflow(self, subprocess: BpmnSubWorkflow):
        if subprocess.completed:
            last_task = subprocess.last_task
            key = (len(subprocess.tasks), last_task.id if last_task is not None else None)
            cached = subprocess.__dict__.get("_completed_json")
            if cached is not None and cached[0] == key:
                return cached[1]
        dct = self._common(subprocess)
        dct["parent_task_id"] = str(subprocess.parent_task_id)
        dct["spec"] = subprocess.spec.name
        dct["typename"] = self.typenames[type(subprocess)]
        return self._encoded(subprocess, "_completed_json", key, dct) \
            if subprocess.completed else dct

    def _task(self, task: Task):
        finished = task._state & _FINISHED
        if finished:
            key = (task.last_state_change, task._parent, len(task._children),
                   len(task.internal_data))
            cached = task.__dict__.get("_finished_json")
            if cached is not None and cached[0] == key:
                return cached[1]
        parent = task.workflow.tasks.get(task._parent)
        if parent is None:
            data, delta = task.data, {}
        else:
            mine, theirs = task.data, parent.data
            data = {}
            delta = {
                "updates": {name: value for name, value in mine.items()
                            if name not in theirs or value != theirs[name]},
                "deletions": [name for name in theirs if name not in mine],
            }
        dct = {
            "id": str(task.id),
            "parent": str(task._parent) if parent is not None else None,
            "children": [str(child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task._state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": self.registry.clean(task.internal_data),
            "data": data,
            "delta": delta,
            "typename": self.task_typename,
        }
        return self._encoded(task, "_finished_json", key, dct) if finished else dct

    def _encoded(self, obj, slot: str, key: tuple, dct: dict) -> orjson.Fragment:
        """``dct`` encoded, kept on ``obj`` under ``key`` for the next saves."""
        fragment = orjson.Fragment(orjson.dumps(dct, default=self.default,
                                                option=_ORJSON_OPTIONS))
        obj.__dict__[slot] = (key, fragment)
        return fragment


_STATE_WRITER = _StateWriter(_STATE_SERIALIZER.registry)


def dumps_state(workflow: BpmnWorkflow, serializer: BpmnWorkflowSerializer | None = None) -> str:
    """Serialize an instance's state (task tree and data) without its spec.

    The dict is SpiffWorkflow's own (see ``_StateWriter``); orjson encodes it several
    times faster than the standard library. ``serializer`` is for tests (SpiffWorkflow's
    own converters and JSON encoder).
    """
    if serializer is not None:
        serializer.registry._encoder_mode = True
        try:
            dct = serializer.to_dict(workflow)
            dct[SERIALIZER_VERSION_KEY] = serializer.VERSION
            return json.dumps(dct, cls=serializer._encoder_cls)
        finally:
            serializer.registry._encoder_mode = False
    registry = _STATE_WRITER.registry
    registry._encoder_mode = True  # data objects inside data convert as SpiffWorkflow's do
    try:
        dct = _STATE_WRITER.workflow(workflow)
        dct[SERIALIZER_VERSION_KEY] = _STATE_SERIALIZER.VERSION
        return orjson.dumps(dct, default=_STATE_WRITER.default, option=_ORJSON_OPTIONS).decode()
    finally:
        registry._encoder_mode = False


def loads_state(text: str, spec, subprocess_specs: dict) -> BpmnWorkflow:
    ser = _STATE_SERIALIZER
    dct = orjson.loads(text)
    ser.migrate(dct)
    return ser.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs)
