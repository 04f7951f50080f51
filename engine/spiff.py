"""SpiffWorkflow 3.2.0 glue: the parser, and serialization with the spec stored apart.

A parsed spec is serialized once per definition version (``dumps_specs``); an
instance's state is serialized without it (``dumps_state``) and re-joined to the
cached spec on load (``loads_state``). This keeps instance blobs small and makes a
load/save cycle cost only the task tree.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnWorkflowConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

SERIALIZER_VERSION_KEY = BpmnWorkflowSerializer.VERSION_KEY


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


def _make_serializers() -> tuple[BpmnWorkflowSerializer, BpmnWorkflowSerializer]:
    spec_registry = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
    spec_serializer = BpmnWorkflowSerializer(spec_registry)
    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = _SpecFreeWorkflowConverter
    state_serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))
    return spec_serializer, state_serializer


_SPEC_SERIALIZER, _STATE_SERIALIZER = _make_serializers()


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


def dumps_state(workflow: BpmnWorkflow) -> str:
    """Serialize an instance's state (task tree and data) without its spec."""
    ser = _STATE_SERIALIZER
    ser.registry._encoder_mode = True
    try:
        dct = ser.to_dict(workflow)
        dct[SERIALIZER_VERSION_KEY] = ser.VERSION
        return json.dumps(dct, cls=ser._encoder_cls)
    finally:
        ser.registry._encoder_mode = False


def loads_state(text: str, spec, subprocess_specs: dict) -> BpmnWorkflow:
    ser = _STATE_SERIALIZER
    dct = json.loads(text, cls=ser.json_decoder_cls)
    ser.migrate(dct)
    return ser.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs)
