"""Load a set of BPMN/DMN files, and the forms they name, into deployable bundles.

Every file is checked before anything is built: well-formed XML, the BPMN/DMN schemas,
this project's rules (``checks``), then SpiffWorkflow's own parse of every executable
process. Each problem comes back as ``FILE:LINE: message``. When there is any problem
no bundle is returned at all, so a caller cannot deploy half of a set by mistake.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins import ManualTaskMixin, UserTaskMixin
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS
from SpiffWorkflow.dmn.specs import BusinessRuleTaskMixin
from SpiffWorkflow.spiff.parser.process import SPIFF_XSD, SpiffBpmnParser

from engine import mail
from engine.roles import role_for_lane
from engine.settings import PROJECT_ROOT
from engine.spiff import dumps_specs, new_parser

from .checks import NO_EXECUTABLE_PROCESS, Checker, build_index, executable_processes
from .forms import FORMS_PREFIX, FormLookup
from .model import BPMN_NS, NS, Bundle, Doc, Problem, UserTaskInfo, describe, shorten_namespaces

__all__ = ["Bundle", "Problem", "UserTaskInfo", "load_directory", "load_files"]

PROJECT_FORMS_DIR = PROJECT_ROOT / "forms"
_KINDS = {".bpmn": "bpmn", ".dmn": "dmn"}
# lxml schemas keep their error log on the object: one lock, and our own validator objects.
_SCHEMA_LOCK = threading.Lock()
_BPMN_VALIDATOR = BpmnValidator(imports={"spiffworkflow": SPIFF_XSD})


@functools.cache
def _dmn_validator(xsd_path: str) -> BpmnValidator:
    return BpmnValidator(xsd_path)


def load_directory(path: Path, forms_dirs: Sequence[Path] | None = None
                   ) -> tuple[list[Bundle], list[Problem]]:
    """Load every ``*.bpmn``/``*.dmn`` under ``path``, skipping any ``tests/`` folder.

    Forms are looked up in ``path/forms`` then ``path/../forms`` unless ``forms_dirs``
    is given. Problem file names are relative to ``path``.
    """
    path = Path(path)
    if not path.is_dir():
        return [], [Problem(str(path), None, "no such directory")]
    files = {}
    for file in sorted(path.rglob("*")):
        rel = file.relative_to(path)
        if file.suffix.lower() in _KINDS and file.is_file() and "tests" not in rel.parts[:-1]:
            files[rel.as_posix()] = file.read_bytes()
    if forms_dirs is None:
        forms_dirs = [path / "forms", path.resolve().parent / "forms"]
    bundles, problems = load_files(files, None, forms_dirs)
    # The mail templates beside the processes (path/mail/*.txt) must compile too.
    mail_problems = [Problem(*found) for found in mail.directory_problems(path)]
    if mail_problems:
        return [], sorted(set(problems + mail_problems), key=Problem.sort_key)
    return bundles, problems


def load_files(files: Mapping[str, bytes], forms: Mapping[str, bytes] | None = None,
               forms_dirs: Sequence[Path] = (PROJECT_FORMS_DIR,)
               ) -> tuple[list[Bundle], list[Problem]]:
    """Check a set of files given by name (e.g. an upload) and build one bundle per process.

    ``forms`` (uploaded forms by file name) are looked up before ``forms_dirs``.
    """
    problems: list[Problem] = []
    docs: dict[str, Doc] = {}
    for name in sorted(files):
        doc = _read(name, files[name], problems)
        if doc is not None:
            doc.schema_ok = _check_schema(doc, problems)
            docs[name] = doc

    index, duplicates = build_index(docs.values())
    problems += duplicates
    checker = Checker(index, FormLookup(forms or {}, list(forms_dirs)))
    for doc in docs.values():
        try:
            if doc.kind == "bpmn":
                checker.check_bpmn(doc)
            else:
                checker.check_dmn(doc)
        except Exception as e:  # a bug in a check must not hide the file's other problems
            problems.append(Problem(doc.name, None, f"could not check this file: {e!r}"))
    problems += checker.problems

    skip = {p.file for p in duplicates} | {d.name for d in docs.values() if not d.schema_ok}
    parser, specs = _parse_with_spiff(docs, skip, checker.reported, problems)
    problems = sorted(set(_one_per_undeployable_file(problems)), key=Problem.sort_key)
    if problems:
        return [], problems
    bundles = []
    for pid, (spec, subs) in sorted(specs.items()):
        try:
            bundles.append(_bundle(pid, spec, subs, parser, docs, checker.forms))
        except Exception as e:  # never expected: the checks above cover what a bundle needs
            file = parser.get_process_parser(pid).filename
            return [], [Problem(file, None, f"could not build process {pid}: {e!r}")]
    return bundles, []


def _read(name: str, data: bytes, problems: list[Problem]) -> Doc | None:
    kind = _KINDS.get(PurePosixPath(name).suffix.lower())
    if kind is None:
        problems.append(Problem(name, None, "not a BPMN (.bpmn) or DMN (.dmn) file"))
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        # Uploaded XML must not reach the network or the file system through entities/DTDs.
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        problems.append(Problem(name, e.lineno or None, f"XML is not well-formed: {e.msg}"))
        return None
    encoding = root.getroottree().docinfo.encoding or "utf-8"
    try:
        text = data.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
    except (LookupError, UnicodeDecodeError) as e:
        problems.append(Problem(name, None, f"cannot read the file as {encoding}: {e}"))
        return None
    return Doc(name, kind, root, text)


def _check_schema(doc: Doc, problems: list[Problem]) -> bool:
    """XSD-validate, reporting every schema error (SpiffWorkflow reports only the last)."""
    if doc.kind == "bpmn":
        validator, what = _BPMN_VALIDATOR, "BPMN"
    else:
        schema = DMN_SCHEMAS.get(etree.QName(doc.root).namespace)
        if schema is None:
            return True  # like SpiffWorkflow: a DMN version it has no schema for is not validated
        validator, what = _dmn_validator(schema), "DMN"
    with _SCHEMA_LOCK:
        validator.preprocess(doc.root)
        ok = validator.validator.validate(doc.root)
        errors = list(validator.validator.error_log)
    for error in errors:
        message = shorten_namespaces(error.message)
        problems.append(Problem(doc.name, error.line or None,
                                f"does not match the {what} schema: {message}"))
    return ok


def _parse_with_spiff(docs: dict[str, Doc], skip: set[str], reported: set[tuple[str, str]],
                      problems: list[Problem]) -> tuple[SpiffBpmnParser, dict]:
    """Parse every executable process; report SpiffWorkflow's errors not already reported."""
    parser = new_parser(validate=False)  # the schemas were checked above, error by error
    called = {el.get("calledElement") for d in docs.values() if d.kind == "bpmn"
              for el in d.root.iter(f"{{{BPMN_NS}}}callActivity")}
    usable = [d for d in docs.values() if d.name not in skip and _needed(d, called)]
    for doc in sorted(usable, key=lambda d: d.kind != "dmn"):
        try:
            if doc.kind == "dmn":
                if any(p.file == doc.name for p in problems):
                    continue  # its rules are reported; SpiffWorkflow would only fail on them
                parser.add_dmn_xml(doc.root, filename=doc.name)
                decision = doc.root.find(f"{{{etree.QName(doc.root).namespace}}}decision")
                parser.dmn_parsers[decision.get("id")].parse()
            else:
                parser.add_bpmn_xml(doc.root, filename=doc.name)
        except Exception as e:
            _add_exception(e, doc, docs, reported, problems)

    specs: dict[str, tuple] = {}
    for doc in usable:
        if doc.kind != "bpmn":
            continue
        for process in executable_processes(doc):
            pid = process.get("id")
            if parser.get_process_parser(pid) is None:
                continue  # the file failed to load, and that is reported
            try:
                specs[pid] = (parser.get_spec(pid), None)
            except Exception as e:
                _add_exception(e, doc, docs, reported, problems)
    for pid, (spec, _) in list(specs.items()):
        try:
            specs[pid] = (spec, parser.get_subprocess_specs(pid))
        except Exception as e:
            # Usually a consequence of a problem already reported (a call to a missing
            # process, a callee that failed to parse); only news when nothing else is wrong.
            if not problems:
                _add_exception(e, docs[parser.get_process_parser(pid).filename], docs,
                               reported, problems)
            del specs[pid]
    return parser, specs


def _one_per_undeployable_file(problems: list[Problem]) -> list[Problem]:
    """A diagram with no executable process deploys nothing: say that, and only that."""
    inert = {p.file for p in problems if p.message == NO_EXECUTABLE_PROCESS}
    return [p for p in problems if p.file not in inert or p.message == NO_EXECUTABLE_PROCESS]


def _needed(doc: Doc, called: set[str | None]) -> bool:
    """A diagram with no executable process deploys nothing, unless another calls it."""
    if doc.kind != "bpmn" or executable_processes(doc):
        return True
    return any(p.get("id") in called for p in doc.root.iterfind("bpmn:process", NS))


def _add_exception(e: Exception, doc: Doc, docs: dict[str, Doc],
                   reported: set[tuple[str, str]], problems: list[Problem]) -> None:
    """Turn a SpiffWorkflow parse error into a Problem naming the element and its line."""
    if not isinstance(e, ValidationException):
        problems.append(Problem(doc.name, None, "the engine could not parse this file: "
                                                f"{type(e).__name__}: {e}"))
        return
    if e.file_name in docs:
        doc = docs[e.file_name]
    el = doc.ids.get(e.id) if e.id else None
    if el is None and e.id:
        doc, el = next(((d, d.ids[e.id]) for d in docs.values() if e.id in d.ids), (doc, None))
    message = " ".join(str(a) for a in (e.args[:1] + tuple(e.notes))).strip().rstrip(".")
    if (doc.name, e.id or "") in reported or message.startswith("No DMN Diagram available"):
        return  # said already, more clearly: by our checks, or on the decision's own file
    if m := re.fullmatch(r"Data Store with name (.*) has no implementation", message, re.S):
        el = next((s for s in doc.ids.values() if s.get("name") == m.group(1)
                   and s.tag.endswith("}dataStore")), None)
        what = describe(el) if el is not None else f'data store "{m.group(1)}"'
        message = f"{what} is not supported: this engine has no data store implementations"
    elif m := re.match(r"When looking for a task spec.*\((.*)\)$", message, re.S):
        message = (f'{describe(el) if el is not None else "an element"} has an outgoing '
                   f'sequence flow to "{m.group(1)}", which is not in the same process')
    elif el is not None:
        message = {
            "A Service Task must have an operator":
                f"{describe(el)} has no spiffworkflow:serviceTaskOperator, so the engine "
                "cannot run it",
            "There is no support implemented for this task type":
                f"{describe(el)} is not supported by the engine",
            "No start event found": f"{describe(el)} has no start event",
            "Multiple outgoing flows are not supported for tasks of type":
                f"{describe(el)} has several outgoing sequence flows; only a gateway may "
                "split the flow, so add one after it",
        }.get(message, f"{describe(el)}: {message}")
    line = e.line_number if isinstance(e.line_number, int) and e.line_number > 0 else None
    if line is None and el is not None:
        line = el.sourceline
    problems.append(Problem(doc.name, line, message))


def _bundle(pid: str, spec, subs: dict, parser: SpiffBpmnParser, docs: dict[str, Doc],
            forms: FormLookup) -> Bundle:
    files = {parser.get_process_parser(p).filename for p in (pid, *subs)}
    form_names: set[str] = set()
    tasks: dict[str, UserTaskInfo] = {}
    for task_spec in (t for s in (spec, *subs.values()) for t in s.task_specs.values()):
        extensions = getattr(task_spec, "extensions", {})
        if isinstance(task_spec, BusinessRuleTaskMixin):
            files.add(parser.dmn_parsers[extensions["calledDecisionId"]].filename)
        if isinstance(task_spec, (UserTaskMixin, ManualTaskMixin)):
            props = extensions.get("properties", {})
            info = UserTaskInfo(
                bpmn_id=task_spec.bpmn_id,
                title=" ".join((task_spec.bpmn_name or task_spec.bpmn_id).split()),
                lane=task_spec.lane,
                role=role_for_lane(task_spec.lane),
                form=(props.get("formJsonSchemaFilename") or "").strip() or None,
                ui_form=(props.get("formUiSchemaFilename") or "").strip() or None,
            )
            tasks.setdefault(info.bpmn_id, info)
            form_names.update(f for f in (info.form, info.ui_form) if f)
    sources = {name: docs[name].text for name in files}
    sources.update((FORMS_PREFIX + f, forms.found[FORMS_PREFIX + f]) for f in form_names)
    sources = dict(sorted(sources.items()))
    digest = hashlib.sha256(
        json.dumps(list(sources.items()), ensure_ascii=False).encode("utf-8")).hexdigest()
    return Bundle(
        process_id=pid,
        name=" ".join(parser.get_process_parser(pid).get_name().split()),
        sources=sources,
        sha256=digest,
        specs_json=dumps_specs(spec, subs),
        user_tasks=tuple(tasks.values()),
    )
