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


def case_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The case data: every completed task's changes applied in completion order."""
    data: dict[str, Any] = {}
    for task in completed_in_order(workflow):
        changed, removed = changes_of(task)
        data.update(changed)
        for key in removed:
            data.pop(key, None)
    return data
