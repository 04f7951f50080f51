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
    TaskConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task, TaskState

from engine.fast_workflow import EngineSubWorkflow, EngineWorkflow

SERIALIZER_VERSION_KEY = BpmnWorkflowSerializer.VERSION_KEY


class _EncodedJSON(dict):
    """Stands for a part of the state already encoded as JSON (``fragment``).

    SpiffWorkflow's registry adds ``typename`` to what a converter returns, so this is
    an (empty) dict that ignores that update; the fragment holds the typename already.
    ``dumps_state`` has orjson pass dict subclasses to its default, which returns the
    fragment, so the bytes are copied, not encoded again.
    """

    def __init__(self, fragment: orjson.Fragment):
        super().__init__()
        self.fragment = fragment

    def update(self, *args, **kwargs) -> None:
        pass


def _cached_json(converter, obj, slot: str, key: tuple, convert) -> _EncodedJSON:
    """The JSON of ``obj``, encoded once per ``key``: parts of the state that no longer
    change are then copied at every later save instead of converted and encoded."""
    cached = obj.__dict__.get(slot)
    if cached is not None and cached[0] == key:
        return cached[1]
    dct = convert(obj)
    dct["typename"] = converter.registry.typenames[type(obj)]
    encoded = _EncodedJSON(orjson.Fragment(orjson.dumps(
        dct, default=_orjson_default(converter.registry), option=_ORJSON_OPTIONS)))
    obj.__dict__[slot] = (key, encoded)
    return encoded


class _FinishedTaskCachingConverter(TaskConverter):
    """A finished task (completed, cancelled, errored) no longer changes until its state
    does. The key holds everything that could still move: the state-change time, the
    links and the size of the internal data. tests/test_spiff.py checks that the output
    equals SpiffWorkflow's own after every step of several processes.
    """

    def to_dict(self, task: Task):
        if not task.has_state(TaskState.FINISHED_MASK):
            return super().to_dict(task)
        key = (task.last_state_change, task._parent, len(task._children),
               len(task.internal_data))
        return _cached_json(self, task, "_finished_json", key, super().to_dict)


class _CompletedSubprocessCachingConverter(BpmnSubWorkflowConverter):
    """A completed subprocess (a finished stage) no longer changes."""

    def to_dict(self, workflow: BpmnSubWorkflow):
        if not workflow.completed:
            return super().to_dict(workflow)
        key = (len(workflow.tasks), workflow.last_task.id if workflow.last_task else None)
        return _cached_json(self, workflow, "_completed_json", key, super().to_dict)


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


def _engine_classes(config: dict, workflow_converter, subworkflow_converter) -> dict:
    """Register the engine's workflow classes (engine/fast_workflow.py) under
    SpiffWorkflow's typenames, after SpiffWorkflow's own: states stay exactly
    SpiffWorkflow's, and a restored state is made of the engine's classes."""

    def named(converter, typename: str):
        return lambda target_class, registry: converter(target_class, registry, typename)

    config[BpmnWorkflow] = workflow_converter
    config[BpmnSubWorkflow] = subworkflow_converter
    config[EngineWorkflow] = named(workflow_converter, "BpmnWorkflow")
    config[EngineSubWorkflow] = named(subworkflow_converter, "BpmnSubWorkflow")
    return config


def _make_serializers() -> tuple[BpmnWorkflowSerializer, BpmnWorkflowSerializer]:
    spec_registry = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
    spec_serializer = BpmnWorkflowSerializer(spec_registry)
    config = _engine_classes(dict(SPIFF_CONFIG), _SpecFreeWorkflowConverter,
                             _CompletedSubprocessCachingConverter)
    config[Task] = _FinishedTaskCachingConverter
    state_serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))
    return spec_serializer, state_serializer


_SPEC_SERIALIZER, _STATE_SERIALIZER = _make_serializers()


def uncached_state_serializer() -> BpmnWorkflowSerializer:
    """The state serializer without the finished-task cache (to test the cache against)."""
    config = _engine_classes(dict(SPIFF_CONFIG), _SpecFreeWorkflowConverter,
                             BpmnSubWorkflowConverter)
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


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
        if type(obj) is _EncodedJSON:
            return obj.fragment
        typename = registry.typenames.get(type(obj))
        if typename is not None:
            return registry.convert_to_dict[typename](obj)
        if callable(obj) or isinstance(obj, ModuleType):
            return None
        if isinstance(obj, set):
            return list(obj)
        raise TypeError(f"{type(obj).__name__} cannot be stored in a process instance")

    return default


_STATE_DEFAULT = _orjson_default(_STATE_SERIALIZER.registry)
# Datetimes go through the registry (as SpiffWorkflow's own encoder does), not orjson.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def dumps_state(workflow: BpmnWorkflow, serializer: BpmnWorkflowSerializer | None = None) -> str:
    """Serialize an instance's state (task tree and data) without its spec.

    The dict is SpiffWorkflow's own (its encoder mode); orjson encodes it several times
    faster than the standard library. ``serializer`` is for tests (the uncached one),
    which use SpiffWorkflow's standard JSON encoder.
    """
    ser = serializer or _STATE_SERIALIZER
    ser.registry._encoder_mode = True
    try:
        dct = ser.to_dict(workflow)
        dct[SERIALIZER_VERSION_KEY] = ser.VERSION
        if serializer is not None:
            return json.dumps(dct, cls=ser._encoder_cls)
        return orjson.dumps(dct, default=_STATE_DEFAULT, option=_ORJSON_OPTIONS).decode()
    finally:
        ser.registry._encoder_mode = False


def loads_state(text: str, spec, subprocess_specs: dict) -> BpmnWorkflow:
    ser = _STATE_SERIALIZER
    dct = orjson.loads(text)
    ser.migrate(dct)
    return ser.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs)
