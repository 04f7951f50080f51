"""The element-level difference shown before deploying (engine/definition_diff.py)."""

from __future__ import annotations

from engine.definition_diff import diff_files
from engine.settings import PROJECT_ROOT

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
        'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
        'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d">'
        '<bpmn:process id="p" isExecutable="true">')
TAIL = "</bpmn:process>{di}</bpmn:definitions>"
TASK = ('<bpmn:userTask id="ack" name="{name}"><bpmn:extensionElements><spiffworkflow:properties>'
        '<spiffworkflow:property name="formJsonSchemaFilename" value="{form}"/>'
        '</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>')
FLOW = ('<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ack">'
        '<bpmn:conditionExpression>{cond}</bpmn:conditionExpression></bpmn:sequenceFlow>')
TIMER = ('<bpmn:boundaryEvent id="late" attachedToRef="ack" cancelActivity="false">'
         '<bpmn:timerEventDefinition><bpmn:timeDate>{when}</bpmn:timeDate>'
         '</bpmn:timerEventDefinition></bpmn:boundaryEvent>')
DI = ('<bpmndi:BPMNDiagram id="di"><bpmndi:BPMNPlane id="pl" bpmnElement="p">'
      '<bpmndi:BPMNShape id="s" bpmnElement="ack"><dc:Bounds x="{x}" y="0" width="100" '
      'height="80"/></bpmndi:BPMNShape></bpmndi:BPMNPlane></bpmndi:BPMNDiagram>')


def bpmn(*parts: str, x: int = 0) -> str:
    return HEAD + '<bpmn:startEvent id="start"/>' + "".join(parts) + TAIL.format(
        di=DI.format(x=x))


def changes(old, new):
    return [(c.category, c.change, c.element_id) for c in diff_files(old, new)]


def test_same_files_and_a_moved_shape_are_no_change():
    text = bpmn(TASK.format(name="Acknowledge", form="a.json"))
    assert diff_files({"p.bpmn": text}, {"p.bpmn": text}) == []
    assert diff_files({"p.bpmn": text}, {"p.bpmn": bpmn(
        TASK.format(name="Acknowledge", form="a.json"), x=300)}) == []


def test_a_renamed_task_and_a_changed_form_are_reported_with_old_and_new():
    old = {"p.bpmn": bpmn(TASK.format(name="Acknowledge", form="a.json"))}
    new = {"p.bpmn": bpmn(TASK.format(name="Send the acknowledgement", form="b.json"))}
    [change] = diff_files(old, new)
    assert (change.category, change.change, change.element_id) == ("tasks", "changed", "ack")
    assert "name: Acknowledge → Send the acknowledgement" in change.details
    assert "formJsonSchemaFilename: a.json → b.json" in change.details


def test_added_timer_removed_flow_and_changed_condition():
    task = TASK.format(name="Acknowledge", form="a.json")
    old = {"p.bpmn": bpmn(task, FLOW.format(cond="minor"))}
    new = {"p.bpmn": bpmn(task, TIMER.format(when='deadlines["acknowledge_by"]'))}
    assert changes(old, new) == [("flows", "removed", "f1"), ("timers", "added", "late")]
    timer = diff_files(old, new)[1]
    assert 'timeDate: deadlines["acknowledge_by"]' in timer.details

    changed = {"p.bpmn": bpmn(task, FLOW.format(cond="major"))}
    [flow] = diff_files(old, changed)
    assert flow.details == ("condition: minor → major",)


def test_forms_and_other_files_are_compared_as_files():
    old = {"forms/a.json": '{"type": "object"}', "x.dmn": "<a/>"}
    new = {"forms/a.json": '{"type": "object",\n "required": []}', "forms/b.json": "{}"}
    assert changes(old, new) == [("forms", "changed", None), ("forms", "added", None),
                                 ("files", "removed", None)]


def test_the_deadline_script_change_shows_the_changed_line():
    text = (PROJECT_ROOT / "processes" / "receipt_and_logging.bpmn").read_text()
    changed = text.replace('"acknowledge_by": add_business_days(received_at, 3)',
                           '"acknowledge_by": add_business_days(received_at, 2)')
    [change] = diff_files({"r.bpmn": text}, {"r.bpmn": changed})
    assert (change.category, change.element_id) == ("tasks", "set_logging_deadlines")
    assert change.details == (
        'script: -    "acknowledge_by": add_business_days(received_at, 3),',
        'script: +    "acknowledge_by": add_business_days(received_at, 2),')
