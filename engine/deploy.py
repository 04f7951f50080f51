"""Deploying definitions: validate everything, then store a new version of each change."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock, governance
from engine.audit import Actor, record
from engine.definition_files import Bundle, Problem, load_directory, load_files
from engine.models import ProcessDefinition


@dataclass(frozen=True)
class Deployed:
    process_id: str
    version: int
    sha256: str
    changed: bool

    def __str__(self) -> str:
        if not self.changed:
            return f"{self.process_id} unchanged"
        return f"{self.process_id} v{self.version} {self.sha256[:12]}"


@dataclass(frozen=True)
class DeployResult:
    deployed: list[Deployed]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def deploy_directory(session: Session, directory: Path, actor: Actor,
                     change_note: str | None = None, *, keep_newer: bool = False
                     ) -> DeployResult:
    """Deploy the changed processes of ``directory``. With ``keep_newer`` a process whose
    files equal a version deployed before is left as it is: a newer version deployed
    since (from the editor) is not replaced by the unchanged files on disk."""
    bundles, problems = load_directory(directory)
    return _deploy(session, bundles, problems, actor, change_note, keep_newer)


def deploy_uploaded(session: Session, files: dict[str, bytes], actor: Actor,
                    change_note: str | None = None) -> DeployResult:
    bundles, problems = load_files(*split_upload(files))
    return _deploy(session, bundles, problems, actor, change_note)


def split_upload(files: dict[str, bytes]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(diagrams, forms by file name) of a set of uploaded files: ``.json`` files are forms."""
    bpmn = {n: b for n, b in files.items() if not n.lower().endswith(".json")}
    forms = {n.rsplit("/", 1)[-1]: b for n, b in files.items() if n.lower().endswith(".json")}
    return bpmn, forms


def _deploy(session: Session, bundles: list[Bundle], problems: list[Problem], actor: Actor,
            change_note: str | None, keep_newer: bool = False) -> DeployResult:
    if problems:
        return DeployResult([], problems)
    deployed = []
    for bundle in sorted(bundles, key=lambda b: b.process_id):
        latest = session.scalars(
            select(ProcessDefinition)
            .where(ProcessDefinition.process_id == bundle.process_id)
            .order_by(ProcessDefinition.version.desc())
            .limit(1)
        ).first()
        if latest is not None and (latest.sha256 == bundle.sha256 or (
                keep_newer and _deployed_before(session, bundle))):
            deployed.append(Deployed(bundle.process_id, latest.version, latest.sha256, False))
            continue
        version = (latest.version + 1) if latest else 1
        session.add(ProcessDefinition(
            process_id=bundle.process_id,
            version=version,
            name=bundle.name,
            sha256=bundle.sha256,
            sources=dict(bundle.sources),
            specs_json=bundle.specs_json,
            user_tasks=[task_info_dict(t) for t in bundle.user_tasks],
            deployed_by=actor.username,
            deployed_at=clock.now(),
            change_note=change_note,
        ))
        record(session, actor, "definition_deployed",
               details={"process_id": bundle.process_id, "version": version,
                        "sha256": bundle.sha256, "change_note": change_note})
        deployed.append(Deployed(bundle.process_id, version, bundle.sha256, True))
    session.flush()
    # Every deployed process has an owner and a review due date (engine/governance.py).
    governance.ensure_all(session, actor)
    return DeployResult(deployed, [])


def _deployed_before(session: Session, bundle: Bundle) -> bool:
    return session.scalar(select(ProcessDefinition.id).where(
        ProcessDefinition.process_id == bundle.process_id,
        ProcessDefinition.sha256 == bundle.sha256).limit(1)) is not None


def task_info_dict(info) -> dict:
    return dataclasses.asdict(info)
