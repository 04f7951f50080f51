"""The case's current data, as the register and the scenario tests see it.

SpiffWorkflow keeps a copy of the data on every task. When branches run side by side
(a non-interrupting deadline escalation beside the main path), the most recently
completed task may carry a stale copy: an escalation task completed after the case
was closed still holds ``status: "acknowledged"``. So the case data is not any one
task's data but the *changes* each completed task made (its data against its
parent's), applied in the order the tasks completed.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task, TaskState

_MISSING = object()


def completed_in_order(workflow: BpmnWorkflow) -> list[Task]:
    """COMPLETED tasks of the workflow and its subprocesses, in completion order."""
    done = TaskState.COMPLETED
    tasks = [
        task
        for wf in (workflow, *workflow.subprocesses.values())
        for task in wf.tasks.values()
        if task.state == done
    ]
    tasks.sort(key=lambda t: t.last_state_change)  # stable: ties keep map order
    return tasks


def changes_of(task: Task) -> tuple[dict[str, Any], list[str]]:
    """What ``task`` set or changed, and what it removed, relative to its parent."""
    parent = task.parent
    if parent is None:
        return dict(task.data), []
    before = parent.data
    changed = {k: v for k, v in task.data.items() if before.get(k, _MISSING) != v}
    removed = [k for k in before if k not in task.data]
    return changed, removed


#: Changes made to the case outside any task (a new Complaint Owner: engine/owner_change.py),
#: kept in the top-level workflow's data as ``[{"at": <time.time()>, "set": {...}}]`` and
#: applied among the tasks' changes at their time (the clock of ``Task.last_state_change``).
CASE_CHANGES = "case_data_changes"


def case_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The case data: every completed task's changes applied in completion order (with
    the changes made outside a task, ``CASE_CHANGES``, at their time)."""
    data: dict[str, Any] = {}
    outside = sorted(workflow.data.get(CASE_CHANGES) or [], key=lambda c: c["at"])
    for task in completed_in_order(workflow):
        while outside and outside[0]["at"] <= task.last_state_change:
            data.update(outside.pop(0)["set"])
        changed, removed = changes_of(task)
        data.update(changed)
        for key in removed:
            data.pop(key, None)
    for change in outside:
        data.update(change["set"])
    return data
