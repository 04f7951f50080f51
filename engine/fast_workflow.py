"""The engine's workflow classes: SpiffWorkflow 3.2.0's, with faster task-tree scans.

About half of the time SpiffWorkflow spends in ``do_engine_steps`` goes to walking
the task tree with its general-purpose iterator: every pass looks for READY tasks
with ``get_tasks(state=READY)`` (a ``BpmnTaskIterator``), and every completed task
looks for WAITING ones with ``update_waiting_tasks`` (a ``TaskIterator``). Both are
depth-first walks with per-task filter objects, depth bookkeeping and ``list.pop(0)``.

The classes here answer the same two questions with a plain stack walk (and a third:
the unfiltered list of every task that SpiffWorkflow builds for its log records at
each process start and end). The result is
the same list in the same order, because the walk follows the iterators' own rules:

- children are visited depth first, in ``_children`` order, and only below a task
  whose state is at least the iterator's ``min_state`` (FUTURE for a READY or WAITING
  query, MAYBE when the mask includes a predicted state, otherwise COMPLETED);
- ``BpmnTaskIterator`` also enters a subprocess (before the calling task's children)
  unless its task is finished and the query asks for no more than finished states;
- ``update_waiting_tasks`` runs ``_update`` on each WAITING task as the walk reaches
  it, after the task's children were taken, exactly as the lazy iterator does.

The iterators also stop descending at depth 1000. Their depth never exceeds the number
of tasks visited, so the fast walk is used only while the workflow (with its
subprocesses) has fewer than ``FAST_SCAN_LIMIT`` tasks; a larger one, possible only
in a long loop, goes through SpiffWorkflow's own iterators. The margin below 1000
covers tasks that a single ``update_waiting_tasks`` pass adds while it walks.

tests/test_fast_workflow.py runs every policy scenario with each fast scan checked
against SpiffWorkflow's iterator, call by call.
"""

from __future__ import annotations

from collections.abc import Iterator

from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

#: Below this many tasks (workflow and subprocesses), the fast walks are exact.
FAST_SCAN_LIMIT = 900

_FINISHED = TaskState.FINISHED_MASK
_WAITING = TaskState.WAITING


def min_state(mask: int) -> int:
    """The lowest state a task must have for the iterators to descend below it."""
    if mask & TaskState.PREDICTED_MASK:
        return TaskState.MAYBE
    if mask & TaskState.DEFINITE_MASK:
        return TaskState.FUTURE
    return TaskState.COMPLETED


def task_count(top: BpmnWorkflow) -> int:
    return len(top.tasks) + sum(len(sp.tasks) for sp in top.subprocesses.values())


def tasks_in_state(workflow, mask: int) -> list[Task]:
    """``workflow.get_tasks(state=mask)`` (``BpmnTaskIterator``, subprocesses included)."""
    subprocesses = workflow.top_workflow.subprocesses
    entered = _subprocesses_with_matches(workflow.top_workflow, mask) if subprocesses else ()
    lowest = min_state(mask)
    enter_finished = not mask <= _FINISHED
    found: list[Task] = []
    stack = [workflow.task_tree]
    while stack:
        task = stack.pop()
        state = task._state
        subprocess = subprocesses.get(task.id) if subprocesses else None
        if subprocess is None:
            if task._children and state >= lowest:
                tasks = task.workflow.tasks
                stack.extend([tasks.get(child) for child in reversed(task._children)])
        else:
            tasks = task.workflow.tasks
            below = [tasks.get(child) for child in reversed(task._children)]
            # The iterator walks the subprocess first; one without a match (say, a
            # finished stage) adds nothing to the result, so it is left out.
            if (not state >= _FINISHED or enter_finished) and task.id in entered:
                below.append(subprocess.task_tree)
            stack.extend(below)
        if state & mask:
            found.append(task)
    return found


def _subprocesses_with_matches(top: BpmnWorkflow, mask: int) -> set:
    """Keys of the subprocesses that hold a task in ``mask`` or contain one that does."""
    subprocesses = top.subprocesses
    entered = set()
    for key, subprocess in subprocesses.items():
        if key in entered:
            continue
        for task in subprocess.tasks.values():
            if task._state & mask:
                break
        else:
            continue
        # This one and every subprocess it is nested in. A subprocess is keyed by the id
        # of the task that runs it, which lives in the top workflow or in another one.
        while key is not None and key not in entered:
            entered.add(key)
            holder = next((sp for sp in subprocesses.values() if key in sp.tasks), None)
            key = holder.parent_task_id if holder is not None else None
    return entered


def waiting_tasks(workflow) -> Iterator[Task]:
    """``TaskIterator(workflow.task_tree, state=WAITING)``, as lazily as it is."""
    for task in workflow.tasks.values():
        if task._state & _WAITING:
            break
    else:  # nothing is waiting, and nothing is updated until something is found
        return
    lowest = TaskState.FUTURE
    stack = [workflow.task_tree]
    while stack:
        task = stack.pop()
        if task._children and task._state >= lowest:
            tasks = task.workflow.tasks
            stack.extend([tasks.get(child) for child in reversed(task._children)])
        if task._state & _WAITING:
            yield task


class FastScans:
    """Overrides the scans of the engine's hot path (see the module docstring)."""

    def get_tasks(self, first_task=None, **kwargs) -> list[Task]:
        if first_task is None and len(kwargs) == 1 and "state" in kwargs \
                and task_count(self.top_workflow) < FAST_SCAN_LIMIT:
            return tasks_in_state(self, kwargs["state"])
        return super().get_tasks(first_task, **kwargs)

    def get_tasks_iterator(self, first_task=None, **kwargs):
        # Only an unfiltered query from the root: ``Workflow.get_tasks(self)``, by which
        # SpiffWorkflow lists every task for its log records (whatever the log level) at
        # each (sub)process start and end. It is consumed at once, as a list.
        if first_task is None and not kwargs \
                and task_count(self.top_workflow) < FAST_SCAN_LIMIT:
            return iter(tasks_in_state(self, TaskState.ANY_MASK))
        return super().get_tasks_iterator(first_task, **kwargs)

    def update_waiting_tasks(self) -> None:
        if len(self.tasks) >= FAST_SCAN_LIMIT:
            super().update_waiting_tasks()
            return
        for task in waiting_tasks(self):
            task.task_spec._update(task)


class EngineSubWorkflow(FastScans, BpmnSubWorkflow):
    """A called process or subprocess of an :class:`EngineWorkflow`."""


class EngineWorkflow(FastScans, BpmnWorkflow):
    """The workflow class of every instance the engine runs."""

    def create_subprocess(self, my_task, spec_name):
        subprocess = EngineSubWorkflow(
            self.subprocess_specs[spec_name], parent_task_id=my_task.id, top_workflow=self)
        self.subprocesses[my_task.id] = subprocess
        return subprocess
