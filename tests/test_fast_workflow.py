"""The engine's workflow classes scan the task tree exactly as SpiffWorkflow does.

engine/fast_workflow.py replaces SpiffWorkflow's iterator in two scans of every step.
These tests hold the replacement to SpiffWorkflow's own iterators: during every policy
scenario each fast scan is compared, call by call, with the iterator's answer, and on
every intermediate state the scan is compared for every state mask.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.util.task import TaskIterator, TaskState

from engine import fast_workflow, runtime, spiff
from engine.calendar import BusinessCalendar
from engine.fast_workflow import EngineSubWorkflow, EngineWorkflow
from engine.scenarios import run_directory

ROOT = Path(__file__).resolve().parent.parent
MASKS = sorted({
    *(1 << bit for bit in range(9)),
    TaskState.PREDICTED_MASK, TaskState.DEFINITE_MASK, TaskState.NOT_FINISHED_MASK,
    TaskState.FINISHED_MASK, TaskState.ANY_MASK,
})


class _Checked:
    """Wraps the fast scans so that each call is compared with SpiffWorkflow's iterator."""

    def __init__(self, monkeypatch):
        self.ready_calls = 0
        self.waiting_calls = 0
        self.waiting_found = 0
        self.masks_compared = 0
        fast = fast_workflow.tasks_in_state
        fast_waiting = fast_workflow.waiting_tasks

        def tasks_in_state(workflow, mask):
            found = fast(workflow, mask)
            assert found == list(BpmnTaskIterator(workflow.task_tree, state=mask))
            self.ready_calls += 1
            if self.ready_calls % 25 == 1:  # now and then, every other mask on this state
                for other in MASKS:
                    assert fast(workflow, other) == list(
                        BpmnTaskIterator(workflow.task_tree, state=other)), other
                    self.masks_compared += 1
            return found

        def waiting_tasks(workflow):
            # In lockstep with SpiffWorkflow's lazy iterator: the caller updates each task
            # before the next is asked for, so both walks see the same changing tree.
            theirs = TaskIterator(workflow.task_tree, state=TaskState.WAITING)
            self.waiting_calls += 1
            for task in fast_waiting(workflow):
                assert next(theirs) is task
                self.waiting_found += 1
                yield task
            assert next(theirs, None) is None

        monkeypatch.setattr(fast_workflow, "tasks_in_state", tasks_in_state)
        monkeypatch.setattr(fast_workflow, "waiting_tasks", waiting_tasks)


@pytest.mark.parametrize("directory", [ROOT / "processes",
                                       ROOT / "tests" / "fixtures" / "scenarios" / "process"])
def test_every_scan_of_every_policy_scenario_equals_spiffworkflows_iterator(directory,
                                                                            monkeypatch):
    checked = _Checked(monkeypatch)
    report = run_directory(directory)
    assert report.ok, report.summary()
    assert report.results, "no scenarios ran"
    assert checked.ready_calls > 20 and checked.waiting_calls > 20
    assert checked.waiting_found > 0
    assert checked.masks_compared > len(MASKS)


def _workflow(directory: Path, process_id: str) -> EngineWorkflow:
    parser = spiff.new_parser()
    parser.add_bpmn_files([str(p) for p in sorted(directory.glob("*.bpmn"))])
    specs = parser.get_spec(process_id), parser.get_subprocess_specs(process_id)
    return runtime.new_workflow(specs, BusinessCalendar(), {
        "received_at": "2026-12-21T14:30:00+00:00", "owner": "owen"})


def _bench_workflow() -> EngineWorkflow:
    return _workflow(ROOT / "bench" / "processes", "complaint_bench")


@pytest.mark.parametrize(("directory", "process_id"), [
    (ROOT / "bench" / "processes", "complaint_bench"),
    (ROOT / "tests" / "fixtures" / "engine", "complaint_like"),
])
def test_every_scan_of_a_run_with_timers_and_gateways_equals_spiffworkflows_iterator(
        directory, process_id, monkeypatch):
    checked = _Checked(monkeypatch)
    workflow = _workflow(directory, process_id)
    assert runtime.run_steps(workflow) is None
    forms = {"log": {"summary": "Broken parcel"}, "classify": {"classification": "major"}}
    while not workflow.is_completed():
        task = runtime.ready_human_tasks(workflow)[0]
        assert runtime.run_steps(workflow, task, forms.get(task.task_spec.name, {})) is None
    assert checked.ready_calls > 10 and checked.waiting_calls > 10
    assert checked.waiting_found > 0


def test_every_scan_of_a_subprocess_nested_in_a_called_process_equals_the_iterators(
        monkeypatch):
    checked = _Checked(monkeypatch)
    workflow = _workflow(ROOT / "tests" / "fixtures" / "nested", "nested_main")
    assert runtime.run_steps(workflow) is None
    # The call activity's subprocess, and the embedded one inside it, both running.
    assert len(workflow.get_active_subprocesses()) == 2
    assert {t.task_spec.name for t in runtime.ready_human_tasks(workflow)} == {
        "inner_task", "beside"}
    # "beside" first: then only the inner subprocess has a READY task, not the stage.
    for name in ("beside", "inner_task", "after"):
        [task] = [t for t in runtime.ready_human_tasks(workflow) if t.task_spec.name == name]
        assert runtime.run_steps(workflow, task, {}) is None
    assert workflow.is_completed()
    assert checked.ready_calls > 5 and checked.masks_compared > len(MASKS)


def test_the_engine_runs_its_own_workflow_classes_and_stores_spiffworkflows_typenames():
    workflow = _bench_workflow()
    assert runtime.run_steps(workflow) is None
    assert type(workflow) is EngineWorkflow
    assert workflow.subprocesses
    assert all(type(sp) is EngineSubWorkflow for sp in workflow.subprocesses.values())
    state = spiff.dumps_state(workflow)
    stored = json.loads(state)
    assert stored["typename"] == "BpmnWorkflow"
    assert {sp["typename"] for sp in stored["subprocesses"].values()} == {"BpmnSubWorkflow"}
    restored = spiff.loads_state(state, workflow.spec, workflow.subprocess_specs)
    assert type(restored) is EngineWorkflow
    assert all(type(sp) is EngineSubWorkflow for sp in restored.subprocesses.values())


def test_a_workflow_past_the_limit_is_scanned_by_spiffworkflows_iterator(monkeypatch):
    def forbidden(*args):
        raise AssertionError("the fast scan ran past its limit")

    monkeypatch.setattr(fast_workflow, "FAST_SCAN_LIMIT", 5)
    monkeypatch.setattr(fast_workflow, "tasks_in_state", forbidden)
    monkeypatch.setattr(fast_workflow, "waiting_tasks", forbidden)
    workflow = _bench_workflow()
    assert runtime.run_steps(workflow) is None
    assert [t.task_spec.name for t in runtime.ready_human_tasks(workflow)] == ["log"]


def test_the_fast_scan_limit_keeps_below_the_iterators_depth_limit():
    # SpiffWorkflow's iterators stop descending at depth 1000, and their depth never
    # exceeds the number of tasks walked: below the limit the walks are the same.
    assert fast_workflow.FAST_SCAN_LIMIT < 1000
    assert BpmnTaskIterator(None).max_depth == 1000 == TaskIterator(None).max_depth
