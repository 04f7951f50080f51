"""Who may do what: the one place that decides."""

from __future__ import annotations

from engine.audit import Actor
from engine.models import HumanTask


def may_work_on(actor: Actor, task: HumanTask) -> bool:
    """A task assigned to a person is theirs; otherwise it belongs to holders of its role."""
    if task.assignee:
        return actor.username == task.assignee
    return bool(task.role) and actor.has_role(task.role)


def may_deploy(actor: Actor) -> bool:
    return actor.has_role("process_owner") or actor.has_role("admin")


def may_inspect_instances(actor: Actor) -> bool:
    return actor.has_role("admin")
