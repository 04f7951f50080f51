"""Case data: the changes of completed tasks in completion order, not the last copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import TaskState

from engine import clock, runtime, spiff
from engine.calendar import BusinessCalendar
from engine.case_data import case_data

from .conftest import FIXTURES

START = datetime(2026, 12, 21, 14, 30, tzinfo=UTC)


def _workflow():
    parser = spiff.new_parser()
    parser.add_bpmn_file(str(FIXTURES / "engine" / "complaint_like.bpmn"))
    spec = parser.get_spec("complaint_like")
    workflow = BpmnWorkflow(spec, parser.get_subprocess_specs("complaint_like"),
                            script_engine=runtime.script_engine_for(BusinessCalendar()))
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(received_at=START.isoformat(), owner="owen")
    workflow.do_engine_steps()
    return workflow


def _complete(workflow, bpmn_id, **data):
    task = next(t for t in runtime.ready_human_tasks(workflow) if t.task_spec.name == bpmn_id)
    assert runtime.run_steps(workflow, task, data) is None


def test_escalation_branch_finishing_last_does_not_bring_back_an_old_status():
    with clock.using(clock.ManualClock(START)) as manual:
        workflow = _workflow()
        _complete(workflow, "log", summary="Late parcel", status="logged")
        _complete(workflow, "acknowledge")
        _complete(workflow, "classify", classification="minor")
        manual.advance(timedelta(days=30))  # the investigation deadline passes
        assert runtime.run_steps(workflow) is None
        assert {t.task_spec.name for t in runtime.ready_human_tasks(workflow)} == {
            "investigate", "chase"}
        _complete(workflow, "investigate", root_cause="Courier")
        _complete(workflow, "resolve", status="resolved")
        _complete(workflow, "close", status="closed")
        _complete(workflow, "chase", chase_note="Chased the owner")  # the stale branch
    assert workflow.is_completed()
    data = case_data(workflow)
    assert data["status"] == "closed"
    assert data["chase_note"] == "Chased the owner"
    assert data["root_cause"] == "Courier"
    assert data["classification"] == "minor"


def test_case_data_follows_a_linear_path():
    workflow = _workflow()
    _complete(workflow, "log", summary="Late parcel", status="logged")
    data = case_data(workflow)
    assert data["status"] == "logged" and data["summary"] == "Late parcel"
    assert data["received_at"] == START.isoformat()
