"""Serialization: the spec stored apart, and the caches of finished tasks and stages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import TaskState

from engine import runtime, spiff
from engine.calendar import BusinessCalendar
from engine.scenarios import run_directory

ROOT = Path(__file__).resolve().parent.parent
FORMS = {"log": {"summary": "Broken parcel"}, "classify": {"classification": "major"}}
PROCESSES = [
    (ROOT / "bench" / "processes", "complaint_bench"),
    (ROOT / "tests" / "fixtures" / "engine", "complaint_like"),
]


def _specs(directory: Path, process_id: str):
    parser = spiff.new_parser()
    parser.add_bpmn_files([str(p) for p in sorted(directory.glob("*.bpmn"))])
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


def _steps(directory: Path, process_id: str):
    """Yield the workflow after every step of one run along the major path."""
    spec, subs = _specs(directory, process_id)
    workflow = BpmnWorkflow(spec, subs,
                            script_engine=runtime.script_engine_for(BusinessCalendar()))
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(received_at=datetime(2026, 12, 21, 14, 30, tzinfo=UTC).isoformat(),
                      owner="owen")
    workflow.do_engine_steps()
    yield workflow
    while not workflow.is_completed():
        task = runtime.ready_human_tasks(workflow)[0]
        assert runtime.run_steps(workflow, task, FORMS.get(task.task_spec.name, {})) is None
        yield workflow


@pytest.mark.parametrize(("directory", "process_id"), PROCESSES)
def test_cached_serialization_equals_spiffworkflows_own_after_every_step(directory, process_id):
    uncached = spiff.uncached_state_serializer()
    for workflow in _steps(directory, process_id):
        assert json.loads(spiff.dumps_state(workflow)) == json.loads(
            spiff.dumps_state(workflow, uncached))


@pytest.mark.parametrize("directory", [ROOT / "processes",
                                       ROOT / "tests" / "fixtures" / "scenarios" / "process"])
def test_serialization_equals_spiffworkflows_own_after_every_step_of_every_scenario(
        directory, monkeypatch):
    uncached = spiff.uncached_state_serializer()
    run_steps = runtime.run_steps
    compared = []

    def checked(workflow, *args, **kwargs):
        error = run_steps(workflow, *args, **kwargs)
        assert json.loads(spiff.dumps_state(workflow)) == json.loads(
            spiff.dumps_state(workflow, uncached))
        compared.append(workflow)
        return error

    monkeypatch.setattr(runtime, "run_steps", checked)
    report = run_directory(directory)
    assert report.ok and report.results, report.summary()
    assert len(compared) > 10


@pytest.mark.parametrize(("directory", "process_id"), PROCESSES)
def test_state_round_trips_without_the_spec(directory, process_id):
    spec, subs = _specs(directory, process_id)
    for workflow in _steps(directory, process_id):
        text = spiff.dumps_state(workflow)
        assert '"spec"' not in text.split('"tasks"')[0]
        restored = spiff.loads_state(text, spec, subs)
        assert json.loads(spiff.dumps_state(restored)) == json.loads(text)
        assert sorted(str(t.id) for t in runtime.ready_human_tasks(restored)) == sorted(
            str(t.id) for t in runtime.ready_human_tasks(workflow))


def test_ready_human_tasks_matches_spiffworkflows_query():
    for workflow in _steps(*PROCESSES[0]):
        expected = workflow.get_tasks(state=TaskState.READY, manual=True)
        assert {t.id for t in runtime.ready_human_tasks(workflow)} == {t.id for t in expected}


def test_specs_serialize_once_and_restore():
    spec, subs = _specs(*PROCESSES[0])
    text = spiff.dumps_specs(spec, subs)
    restored_spec, restored_subs = spiff.loads_specs(text)
    assert restored_spec.name == "complaint_bench"
    assert set(restored_subs) == set(subs) and len(subs) == 6
