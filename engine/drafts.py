"""Editor drafts: one process owner's revision of one process's files, before it is deployed.

A draft starts as a copy of the current version's files (``ProcessDefinition.sources``:
its diagrams, DMN files and ``forms/<name>`` JSON Schemas) plus the process's scenario
files (``tests/<name>.json``: those kept with the current version, else the ones in
``processes/tests`` that run one of the draft's processes). It is kept per user and
process in ``definition_drafts`` until it is deployed or discarded.

Validation is ``complaints definitions deploy``'s own (``deploy.split_upload`` and
``definition_files.load_files``); scenarios run through ``scenarios.run_directory`` on
the draft written to a temporary folder; deploying goes through ``deploy.deploy_uploaded``
and is refused while the draft has a problem or a failing scenario.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lxml import etree
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from engine import clock, scenarios
from engine.audit import Actor, record
from engine.calendar import iso, parse_instant
from engine.definition_files import Problem, load_files
from engine.definition_files.checks import NO_EXECUTABLE_PROCESS
from engine.definition_files.model import BPMN_NS
from engine.deploy import Deployed, deploy_uploaded, split_upload
from engine.errors import Conflict, InvalidData, NotFound
from engine.models import DefinitionDraft, ProcessDefinition
from engine.settings import PROJECT_ROOT

FORMS_PREFIX = "forms/"
TESTS_PREFIX = "tests/"
PROJECT_SCENARIOS = PROJECT_ROOT / "processes" / "tests"
MAX_FILE_CHARS = 2_000_000
MAX_NOTE_CHARS = 4000
MIN_NOTE_WORDS = 3
#: Prefix of what a non-executable diagram would be told if it were executable.
IF_EXECUTABLE = "if it were executable: "
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\- ]*")
_ID_IN_MESSAGE = re.compile(r"\(([A-Za-z_][\w.\-]*)\)|\"([A-Za-z_][\w.\-]*)\"")
_DI_NAMESPACES = ("http://www.omg.org/spec/BPMN/20100524/DI",
                  "http://www.omg.org/spec/DD/20100524/DC",
                  "http://www.omg.org/spec/DD/20100524/DI")


# -- opening, saving, discarding -----------------------------------------------------------


def current_version(session: Session, process_id: str) -> ProcessDefinition | None:
    return session.scalars(
        select(ProcessDefinition)
        .where(ProcessDefinition.process_id == process_id)
        .order_by(ProcessDefinition.version.desc())
        .limit(1)
    ).first()


def including_processes(session: Session, process_id: str) -> list[str]:
    """Other processes whose current version contains ``process_id`` (they call it): a new
    version of it alone does not change them."""
    latest = select(ProcessDefinition.process_id,
                    func.max(ProcessDefinition.version).label("version")) \
        .group_by(ProcessDefinition.process_id).subquery()
    rows = session.scalars(select(ProcessDefinition).join(latest, and_(
        ProcessDefinition.process_id == latest.c.process_id,
        ProcessDefinition.version == latest.c.version))
        .where(ProcessDefinition.process_id != process_id)).all()
    return sorted(row.process_id for row in rows if process_id in process_ids(row.sources or {}))


def find_draft(session: Session, process_id: str, username: str) -> DefinitionDraft | None:
    return session.scalars(
        select(DefinitionDraft)
        .where(DefinitionDraft.process_id == process_id, DefinitionDraft.username == username)
    ).first()


def open_draft(session: Session, process_id: str, actor: Actor) -> DefinitionDraft:
    """The actor's draft of ``process_id``; a new one from the current version if none."""
    draft = find_draft(session, process_id, actor.username)
    if draft is not None:
        return draft
    version = current_version(session, process_id)
    if version is None:
        raise NotFound(f'there is no deployed process "{process_id}"')
    files = baseline_files(version)
    now = clock.now()
    draft = DefinitionDraft(process_id=process_id, username=actor.username,
                            based_on_version=version.version, files=dict(sorted(files.items())),
                            created_at=now, updated_at=now)
    session.add(draft)
    record(session, actor, "definition_draft_opened",
           details={"process_id": process_id, "based_on_version": version.version})
    session.flush()
    return draft


def baseline_files(version: ProcessDefinition) -> dict[str, str]:
    """What a draft of ``version`` starts from: its files, and its scenarios (those kept
    with it, else the project's scenarios of its processes)."""
    files = dict(version.sources or {})
    if not any(name.startswith(TESTS_PREFIX) for name in files):
        files.update(project_scenarios(process_ids(files)))
    return files


def save_files(session: Session, process_id: str, actor: Actor,
               changed: Mapping[str, str], removed: tuple[str, ...] = ()) -> DefinitionDraft:
    """Replace or add the ``changed`` files of the actor's draft and drop ``removed`` ones."""
    draft = find_draft(session, process_id, actor.username)
    if draft is None:
        raise NotFound("you have no draft of this process: open the editor again")
    errors: dict[str, list[str]] = {}
    for name, text in changed.items():
        problem = file_name_problem(name)
        if problem is None and not isinstance(text, str):
            problem = "the file's content must be text"
        elif problem is None and len(text) > MAX_FILE_CHARS:
            problem = f"the file is larger than {MAX_FILE_CHARS} characters"
        if problem:
            errors[name] = [problem]
    for name in removed:
        if name not in draft.files:
            errors[name] = ["the draft has no such file"]
    if errors:
        raise InvalidData("the draft was not saved", errors)
    files = {n: t for n, t in draft.files.items() if n not in removed}
    files.update(changed)
    if not any(_kind(n) == "bpmn" for n in files):
        raise InvalidData("the draft was not saved", {"files": ["a draft needs a BPMN diagram"]})
    draft.files = dict(sorted(files.items()))
    draft.updated_at = clock.now()
    record(session, actor, "definition_draft_saved",
           details={"process_id": process_id, "changed": sorted(changed),
                    "removed": sorted(removed)})
    session.flush()
    return draft


def discard_draft(session: Session, process_id: str, actor: Actor) -> bool:
    draft = find_draft(session, process_id, actor.username)
    if draft is None:
        return False
    session.delete(draft)
    record(session, actor, "definition_draft_discarded", details={"process_id": process_id})
    session.flush()
    return True


def file_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a draft file, or None: a .bpmn/.dmn file, forms/*.json or
    tests/*.json, with no folders beyond those and no '..'."""
    if not isinstance(name, str) or not name:
        return "a file needs a name"
    path = PurePosixPath(name)
    if "\\" in name or path.is_absolute() or ".." in path.parts or len(name) > 200:
        return "a file name must be a plain name, with no folders or '..'"
    parts = path.parts
    if len(parts) == 2 and parts[0] + "/" in (FORMS_PREFIX, TESTS_PREFIX):
        if not parts[1].lower().endswith(".json") or not _NAME.fullmatch(parts[1]):
            return f"files in {parts[0]}/ are .json files with a plain name"
        return None
    if len(parts) != 1 or not _NAME.fullmatch(name) or _kind(name) is None:
        return "a diagram is a .bpmn or .dmn file with a plain name (forms go in forms/, " \
               "scenarios in tests/)"
    return None


def _kind(name: str) -> str | None:
    suffix = PurePosixPath(name).suffix.lower()
    if "/" in name:
        return "form" if name.startswith(FORMS_PREFIX) else "test"
    return {".bpmn": "bpmn", ".dmn": "dmn"}.get(suffix)


def process_ids(files: Mapping[str, str]) -> set[str]:
    """Ids of the processes defined in the BPMN files."""
    ids = set()
    for name, text in files.items():
        if _kind(name) == "bpmn":
            root = _parse(text)
            if root is not None:
                ids.update(p.get("id") for p in root.iterfind(f"{{{BPMN_NS}}}process")
                           if p.get("id"))
    return ids


def project_scenarios(ids: set[str], folder: Path = PROJECT_SCENARIOS) -> dict[str, str]:
    """``tests/<name>`` -> text of the scenario files in ``folder`` that run one of ``ids``."""
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        text = path.read_text(encoding="utf-8")
        try:
            process = json.loads(text).get("process")
        except (ValueError, AttributeError):
            continue
        if process in ids:
            found[TESTS_PREFIX + path.name] = text
    return found


# -- validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftProblem:
    """A deploy problem, with the id of the diagram element it is about when known."""

    file: str
    line: int | None
    message: str
    element_id: str | None

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "message": self.message,
                "element_id": self.element_id, "text": f"{self.file}:{self.line or 0}: "
                                                       f"{self.message}"}


def definition_files(files: Mapping[str, str]) -> dict[str, bytes]:
    """The files deploy takes: diagrams and forms (``forms/<name>``), not scenarios."""
    return {n: t.encode("utf-8") for n, t in files.items() if _kind(n) in ("bpmn", "dmn", "form")}


def validate(files: Mapping[str, str]) -> list[DraftProblem]:
    """Exactly ``complaints definitions deploy``'s checks (as for an upload).

    A diagram with no executable process (typical of other modelling tools) gets only
    "no executable process" from them; so that its author learns what the engine could
    not run, it is then checked once more as if its processes were executable, and those
    findings are added, element by element, after that problem.
    """
    problems = _load_problems(files)
    inert = sorted({p.file for p in problems if p.message == NO_EXECUTABLE_PROCESS})
    found = [_locate(p, files) for p in problems]
    for name in inert:
        root = _parse(files[name])
        if root is None:
            continue
        processes = list(root.iterfind(f"{{{BPMN_NS}}}process"))
        if not processes:
            continue
        for process in processes:
            process.set("isExecutable", "true")
        forced = {**files, name: etree.tostring(root, encoding="unicode")}
        extra = [_locate(p, forced) for p in _load_problems(forced) if p.file == name]
        if not extra:
            extra = [DraftProblem(name, 1, IF_EXECUTABLE + "nothing else found: the engine "
                                  "could run it once its process is marked executable", None)]
        found += [DraftProblem(p.file, p.line, p.message if p.message.startswith(IF_EXECUTABLE)
                               else IF_EXECUTABLE + p.message, p.element_id) for p in extra]
    return found


def _load_problems(files: Mapping[str, str]) -> list[Problem]:
    bpmn, forms = split_upload(definition_files(files))
    return load_files(bpmn, forms)[1]


def _locate(problem: Problem, files: Mapping[str, str]) -> DraftProblem:
    """Find the element a problem is about: an id the message names, else the innermost
    element with an id that starts at or before the problem's line."""
    text = files.get(problem.file)
    root = _parse(text) if text is not None and _kind(problem.file) == "bpmn" else None
    if root is None:
        return DraftProblem(problem.file, problem.line, problem.message, None)
    ids = {el.get("id"): el for el in root.iter()
           if isinstance(el.tag, str) and el.get("id") and not _is_di(el)}
    for match in _ID_IN_MESSAGE.finditer(problem.message):
        ident = match.group(1) or match.group(2)
        if ident in ids and etree.QName(ids[ident]).localname != "process":
            return DraftProblem(problem.file, problem.line, problem.message, ident)
    found = None
    if problem.line:
        for el in ids.values():
            if el.sourceline and el.sourceline <= problem.line and \
                    etree.QName(el).localname not in ("process", "definitions", "laneSet"):
                if found is None or el.sourceline >= found.sourceline:
                    found = el
    return DraftProblem(problem.file, problem.line, problem.message,
                        found.get("id") if found is not None else None)


def _is_di(el: etree._Element) -> bool:
    return etree.QName(el).namespace in _DI_NAMESPACES


def _parse(text: str | None) -> etree._Element | None:
    if text is None:
        return None
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        return etree.fromstring(text.encode("utf-8"), parser)
    except (etree.XMLSyntaxError, ValueError):
        return None


# -- scenarios ----------------------------------------------------------------------------


def run_scenarios(files: Mapping[str, str]) -> scenarios.Report:
    """Run the draft's scenario files against its diagrams, as ``complaints definitions
    test`` runs them on a folder."""
    with tempfile.TemporaryDirectory(prefix="draft-") as tmp:
        folder = Path(tmp) / "definitions"
        for name, text in files.items():
            if file_name_problem(name) is None:
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        folder.mkdir(exist_ok=True)
        report = scenarios.run_directory(folder)
    return scenarios.Report(Path("draft"), report.problems, report.results)


_DEADLINE_FAILURE = re.compile(r"expect\.deadlines\.(\w+): expected (\S+), got (\S+)$")


def deadline_changes(result: scenarios.ScenarioResult) -> list[dict]:
    """The failed deadline expectations of a scenario: (deadline, expected, got)."""
    out = []
    for failure in result.failures:
        m = _DEADLINE_FAILURE.match(failure)
        if m:
            out.append({"deadline": m.group(1), "expected": m.group(2), "got": m.group(3)})
    return out


def accept_deadline(session: Session, process_id: str, actor: Actor, file: str,
                    deadline: str, value: str) -> DefinitionDraft:
    """Make a scenario of the draft expect ``value`` for ``deadline`` (the result it got)."""
    draft = find_draft(session, process_id, actor.username)
    if draft is None:
        raise NotFound("you have no draft of this process: open the editor again")
    if _kind(file) != "test" or file not in draft.files:
        raise InvalidData("no such scenario in the draft", {"file": ["no such scenario"]})
    try:
        instant = iso(parse_instant(value))
    except (ValueError, TypeError) as exc:
        raise InvalidData("not an instant", {"value": [str(exc)]}) from exc
    try:
        doc = json.loads(draft.files[file])
        deadlines = doc["expect"]["deadlines"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidData("the scenario has no expected deadlines",
                          {"file": ["the scenario has no expect.deadlines"]}) from exc
    if not isinstance(deadlines, dict) or deadline not in deadlines:
        raise InvalidData("the scenario does not expect that deadline",
                          {"deadline": [f'the scenario expects no "{deadline}"']})
    deadlines[deadline] = instant
    return save_files(session, process_id, actor,
                      {file: json.dumps(doc, indent=2, ensure_ascii=False) + "\n"})


# -- deploying ----------------------------------------------------------------------------


def check_note(note: str | None) -> str:
    note = (note or "").strip()
    if len(note.split()) < MIN_NOTE_WORDS:
        raise InvalidData("a change note is required", {"change_note": [
            "say what changed in the policy and why (a sentence of at least "
            f"{MIN_NOTE_WORDS} words)"]})
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidData("the change note is too long",
                          {"change_note": [f"at most {MAX_NOTE_CHARS} characters"]})
    return note


def check_draft(files: Mapping[str, str]) -> None:
    """Raise InvalidData unless the files pass validation and all their scenarios."""
    problems = validate(files)
    if problems:
        raise InvalidData("the draft has problems: it cannot be deployed",
                          {"validation": [p.as_dict()["text"] for p in problems]})
    report = run_scenarios(files)
    if not report.ok:
        failed = [r.name for r in report.results if not r.passed]
        raise InvalidData("scenario tests fail: the draft cannot be deployed",
                          {"scenarios": [f"{len(failed)} failing: {', '.join(failed)}"
                                         if failed else report.summary()]})


def deploy_draft(session: Session, process_id: str, actor: Actor, change_note: str | None,
                 checked_files: Mapping[str, str] | None = None) -> list[Deployed]:
    """Deploy the actor's draft as new versions, refusing when it has a problem, a failing
    scenario, no change note, or when someone deployed since it was opened.

    ``checked_files`` are files the caller already passed through ``check_draft`` (outside
    this transaction, so that the scenarios do not hold the database's write lock); the
    checks are run again here unless the draft still has exactly those files.
    """
    note = check_note(change_note)
    draft = find_draft(session, process_id, actor.username)
    if draft is None:
        raise NotFound("you have no draft of this process: open the editor again")
    files = dict(draft.files)
    if checked_files is None or dict(checked_files) != files:
        check_draft(files)
    latest = current_version(session, process_id)
    if latest is not None and draft.based_on_version is not None \
            and latest.version != draft.based_on_version:
        raise Conflict(f"version {latest.version} was deployed since this draft was opened "
                       f"from version {draft.based_on_version}: discard the draft and open "
                       "it again")
    result = deploy_uploaded(session, definition_files(files), actor, note)
    if not result.ok:  # cannot happen: validated above with the same checks
        raise InvalidData("the draft has problems: it cannot be deployed",
                          {"validation": [str(p) for p in result.problems]})
    mine = next((d for d in result.deployed if d.process_id == process_id), None)
    if not any(d.changed for d in result.deployed) or mine is None:
        raise InvalidData("nothing to deploy: the draft's diagrams and forms are the same "
                          "as the current version", {"files": ["no change"]})
    tests = {n: t for n, t in files.items() if _kind(n) == "test"}
    if tests and mine.changed:
        row = session.scalars(select(ProcessDefinition).where(
            ProcessDefinition.process_id == process_id,
            ProcessDefinition.version == mine.version)).one()
        row.sources = dict(sorted({**row.sources, **tests}.items()))
    record(session, actor, "definition_draft_deployed",
           details={"process_id": process_id, "change_note": note,
                    "versions": {d.process_id: d.version for d in result.deployed if d.changed}})
    session.delete(draft)
    session.flush()
    return result.deployed


def version_files(session: Session, process_id: str, version: int | None = None
                  ) -> tuple[ProcessDefinition, dict[str, str]]:
    """A version (default the current one) and its files, as a draft of it starts."""
    query = select(ProcessDefinition).where(ProcessDefinition.process_id == process_id)
    if version is not None:
        query = query.where(ProcessDefinition.version == version)
    row = session.scalars(query.order_by(ProcessDefinition.version.desc()).limit(1)).first()
    if row is None:
        raise NotFound(f'there is no deployed process "{process_id}"'
                       + (f" version {version}" if version is not None else ""))
    return row, baseline_files(row)
