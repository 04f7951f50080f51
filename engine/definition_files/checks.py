"""Checks on the XML of BPMN and DMN files that SpiffWorkflow does not make (or makes vaguely).

They read the lxml tree directly, so each rule reports every case with the element's line,
even where SpiffWorkflow would stop at the first error of a process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml import etree

from engine import sandbox, templates
from engine.roles import ROLES, role_for_lane

from .forms import FormLookup, bad_form_name
from .model import NS, Doc, Problem, describe, label, local_name

NO_EXECUTABLE_PROCESS = (
    'no executable process: every process in this diagram has isExecutable="false" '
    "(or there is no process); mark the process executable to deploy it"
)
FORM_PROPERTIES = {"formJsonSchemaFilename": False, "formUiSchemaFilename": True}
# A timer "expression" that is really bare ISO-8601 text: PT72H, R3/PT1H, 2026-01-01T09:00Z.
_ISO_LIKE = re.compile(r"(R\d*/)?(P[\dYMWDTHS.,]+|\d{4}-\d\d-\d\d\S*)(/\S+)?")
# Event definitions whose <kind>Ref attribute names a root element of that kind.
_EVENT_REFS = ("error", "escalation", "message", "signal")
_TIMER_KINDS = ("timeDate", "timeDuration", "timeCycle")
_LINE_PREFIX = re.compile(r"Line (\d+):\s*")
# A DMN input entry's "?" stands for the input value, except inside quotes (see DMNEngine).
_DMN_PLACEHOLDER = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")


def executable_processes(doc: Doc) -> list[etree._Element]:
    """Process elements SpiffWorkflow treats as executable (isExecutable defaults to true)."""
    return [p for p in doc.root.iterfind("bpmn:process", NS)
            if p.get("isExecutable", "true") == "true"]


@dataclass
class Index:
    """Processes and decisions of the whole set of files, by id (first definition wins)."""

    processes: dict[str, tuple[Doc, etree._Element]] = field(default_factory=dict)
    decisions: dict[str, tuple[Doc, etree._Element]] = field(default_factory=dict)
    # (kind, id) of the errors, escalations and signals events may refer to, in any file
    definitions: set[tuple[str, str]] = field(default_factory=set)


def build_index(docs: Iterable[Doc]) -> tuple[Index, list[Problem]]:
    """Index processes and decisions; report ids defined twice (rule 8)."""
    index, problems = Index(), []
    for doc in docs:
        if doc.kind == "bpmn":
            index.definitions.update(
                (local_name(el), el.get("id")) for el in doc.root if local_name(el) in _EVENT_REFS)
            table, what = index.processes, "process"
            elements = doc.root.findall("bpmn:process", NS)
        else:
            table, what = index.decisions, "decision"
            elements = dmn_decisions(doc)
        for el in elements:
            ident = el.get("id")
            if ident is None:
                continue
            if ident not in table:
                table[ident] = (doc, el)
                continue
            first_doc, first = table[ident]
            # A diagram that is not executable deploys nothing, so its ids clash with none.
            if not _runs(first):
                table[ident] = (doc, el)
            elif _runs(el):
                problems.append(doc.problem(
                    el, f'{what} id "{ident}" is already defined in {first_doc.name}:'
                        f"{first.sourceline}; {what} ids must be unique across all files"))
    return index, problems


def _runs(element: etree._Element) -> bool:
    return local_name(element) != "process" or element.get("isExecutable", "true") == "true"


def dmn_decisions(doc: Doc) -> list[etree._Element]:
    return [el for el in doc.root if local_name(el) == "decision"]


@dataclass
class Checker:
    """Runs the rules file by file; remembers which elements it reported on."""

    index: Index
    forms: FormLookup
    problems: list[Problem] = field(default_factory=list)
    reported: set[tuple[str, str]] = field(default_factory=set)

    def add(self, doc: Doc, owner: etree._Element, message: str,
            at: etree._Element | None = None, offset: int = 0) -> None:
        self.problems.append(doc.problem(at if at is not None else owner, message, offset))
        self.reported.add((doc.name, owner.get("id") or ""))

    # -- BPMN --------------------------------------------------------------------------------

    def check_bpmn(self, doc: Doc) -> None:
        processes = executable_processes(doc)
        if not processes:
            self.problems.append(Problem(doc.name, 1, NO_EXECUTABLE_PROCESS))
            return
        for process in processes:
            self._check_lanes(doc, process)
            self._check_flow_refs(doc, process)
            for el in process.iter():
                self._check_element(doc, el)

    def _check_flow_refs(self, doc: Doc, process: etree._Element) -> None:
        """Every <incoming>/<outgoing> names a sequence flow of the process.

        SpiffWorkflow follows sequenceFlow elements only, so a node whose <outgoing>
        names a missing flow silently ends the process there.
        """
        flows = {f.get("id") for f in process.iter(f"{{{NS['bpmn']}}}sequenceFlow")}
        for ref in process.iter(f"{{{NS['bpmn']}}}incoming", f"{{{NS['bpmn']}}}outgoing"):
            name = (ref.text or "").strip()
            if name and name not in flows:
                node = ref.getparent()
                self.add(doc, node, f'{describe(node)} lists {local_name(ref)} flow "{name}", '
                                    "but the process has no sequence flow with that id",
                         at=ref)

    def _check_element(self, doc: Doc, el: etree._Element) -> None:
        kind = local_name(el)
        for ext in el.iterfind("bpmn:extensionElements/spiffworkflow:*", NS):
            if local_name(ext) in ("preScript", "postScript") and (ext.text or "").strip():
                self._code(doc, el, ext, f"{local_name(ext)} of {describe(el)}", "exec")
            elif local_name(ext) == "instructionsForEndUser" and (ext.text or "").strip():
                for line, message in templates.template_errors(ext.text):
                    self.add(doc, el, f"instructions of {describe(el)}: {message}", at=ext,
                             offset=(line or 1) - 1)
        if kind == "scriptTask":
            script = next((c for c in el if local_name(c) == "script"), None)
            if script is None or not (script.text or "").strip():
                self.add(doc, el, f"{describe(el)} has no script")
            else:
                self._code(doc, el, script, f"script of task {label(el)}", "exec")
        elif kind == "sequenceFlow":
            for cond in el.iterfind("bpmn:conditionExpression", NS):
                self._code(doc, el, cond, f"condition of sequence flow {label(el)}", "eval")
        elif kind in ("loopCondition", "completionCondition", "loopCardinality"):
            owner = el.getparent()
            if local_name(owner).endswith("LoopCharacteristics"):
                owner = owner.getparent()
            self._code(doc, owner, el, f"{kind} of {describe(owner)}", "eval")
        elif kind in ("boundaryEvent", "intermediateCatchEvent"):
            if not any(local_name(c).endswith("EventDefinition") for c in el):
                self.add(doc, el, f"{describe(el)} has no event definition: say what it waits "
                                  "for (a timer, message, signal, error, ...)")
        elif kind == "timerEventDefinition":
            self._check_timer(doc, el)
        elif kind.endswith("EventDefinition") and kind[:-15] in _EVENT_REFS:
            self._check_event_ref(doc, el, kind[:-15])
        elif kind in ("exclusiveGateway", "inclusiveGateway"):
            self._check_gateway(doc, el)
        elif kind == "callActivity":
            self._check_call(doc, el)
        elif kind == "businessRuleTask":
            self._check_decision_ref(doc, el)
        for prop in el.iterfind(
                "bpmn:extensionElements/spiffworkflow:properties//spiffworkflow:property", NS):
            if prop.get("name") in FORM_PROPERTIES and (prop.get("value") or "").strip():
                self._check_form(doc, el, prop)
            elif prop.get("name") == "dueAt" and (prop.get("value") or "").strip():
                self._check_expression_attribute(doc, el, prop, "value",
                                                 f"dueAt property of {describe(el)}")

    def _check_expression_attribute(self, doc: Doc, owner: etree._Element,
                                    el: etree._Element, attribute: str, what: str) -> None:
        for _line, message in sandbox.syntax_errors(el.get(attribute), "eval"):
            self.add(doc, owner, f"{what}: {_LINE_PREFIX.sub('', message, count=1)}", at=el)

    def _code(self, doc: Doc, owner: etree._Element, text_el: etree._Element,
              what: str, mode: str) -> None:
        """Report the sandbox's compile errors at their own line within the text."""
        if not (text_el.text or "").strip():
            return
        try:
            errors = sandbox.syntax_errors(text_el.text, mode)
        except (SyntaxError, ValueError) as e:
            errors = [(getattr(e, "lineno", None), str(e))]
        for line, message in errors:
            m = _LINE_PREFIX.match(message)
            if m:
                line = line or int(m.group(1))
                message = message[m.end():]
            self.add(doc, owner, f"{what}: {message}", at=text_el, offset=(line or 1) - 1)

    def _check_timer(self, doc: Doc, definition: etree._Element) -> None:
        event = definition.getparent()
        exprs = [c for c in definition if local_name(c) in _TIMER_KINDS]
        if not exprs:
            self.add(doc, event, f"timer of {describe(event)} has no timeDate, timeDuration "
                                 "or timeCycle expression", at=definition)
        for expr in exprs:
            text = (expr.text or "").strip()
            what = f"{local_name(expr)} of {describe(event)}"
            if not text:
                self.add(doc, event, f"{what} is empty: give a Python expression that returns "
                                     "an ISO-8601 string", at=expr)
            elif _ISO_LIKE.fullmatch(text):
                self.add(doc, event, f"{what} is the bare ISO-8601 text {text}; timer expressions "
                                     f'are Python expressions, so write "{text}" in quotes',
                         at=expr)
            else:
                self._code(doc, event, expr, what, "eval")

    def _check_event_ref(self, doc: Doc, definition: etree._Element, what: str) -> None:
        """An event's errorRef (messageRef, ...) must name a defined error (message, ...)."""
        ref = definition.get(f"{what}Ref")
        if not ref:
            return
        if what == "message":  # SpiffWorkflow looks for messages in the same file only
            found = ref in doc.ids and local_name(doc.ids[ref]) == what
        else:
            found = (what, ref) in self.index.definitions
        if not found:
            event = definition.getparent()
            self.add(doc, event, f'{describe(event)} refers to {what} "{ref}", which is not '
                                 f"defined{' in this file' if what == 'message' else ''}",
                     at=definition)

    def _check_gateway(self, doc: Doc, gateway: etree._Element) -> None:
        """Rule 5: with several ways out, each needs a condition unless it is the default."""
        flows = gateway.getparent().xpath(
            "bpmn:sequenceFlow[@sourceRef=$id]", namespaces=NS, id=gateway.get("id"))
        if len(flows) < 2:
            return
        default = gateway.get("default")
        for flow in flows:
            has_condition = any((c.text or "").strip()
                                for c in flow.iterfind("bpmn:conditionExpression", NS))
            if has_condition or flow.get("id") == default:
                continue
            why = (f'is not the gateway\'s default ("{default}")' if default
                   else "the gateway has no default")
            self.add(doc, flow, f"sequence flow {label(flow)} leaves {describe(gateway)} "
                                f"with no condition and {why}")

    def _check_call(self, doc: Doc, call: etree._Element) -> None:
        called = call.get("calledElement")
        if not called:
            self.add(doc, call, f"{describe(call)} has no calledElement: name the process it calls")
        elif called not in self.index.processes:
            self.add(doc, call, f'{describe(call)} calls process "{called}", which is not in any '
                                "of the loaded files")
        else:
            target_doc, target = self.index.processes[called]
            if target.get("isExecutable", "true") != "true":
                self.add(doc, call, f'{describe(call)} calls process "{called}" '
                                    f"({target_doc.name}:{target.sourceline}), which is not "
                                    'executable (isExecutable="false")')

    def _check_decision_ref(self, doc: Doc, task: etree._Element) -> None:
        ref = task.find("bpmn:extensionElements/spiffworkflow:calledDecisionId", NS)
        decision = (ref.text or "") if ref is not None else ""  # used as is by SpiffWorkflow
        if not decision.strip():
            self.add(doc, task, f"{describe(task)} names no decision: add "
                                "spiffworkflow:calledDecisionId with a DMN decision id")
        elif decision not in self.index.decisions:
            known = ", ".join(sorted(self.index.decisions)) or "none"
            self.add(doc, task, f'{describe(task)} uses decision "{decision}", which is not in '
                                f"any loaded DMN file (known: {known})")

    def _check_form(self, doc: Doc, task: etree._Element, prop: etree._Element) -> None:
        name, ui = prop.get("value").strip(), FORM_PROPERTIES[prop.get("name")]
        what = "UI schema" if ui else "form"
        if bad_form_name(name):
            self.add(doc, task, f'{describe(task)} names {what} "{name}": a form must be a file '
                                "name inside the forms folder", at=prop)
            return
        problems = self.forms.check(name, ui)
        if problems is None:
            self.add(doc, task, f'{describe(task)} names {what} "{name}", which was not found '
                                f"(looked in: {self.forms.where()})", at=prop)
        else:
            self.problems.extend(problems)

    def _check_lanes(self, doc: Doc, process: etree._Element) -> None:
        """Rule 7: lanes name roles; in a process with lanes, every human task is in one."""
        lanes = process.findall("bpmn:laneSet//bpmn:lane", NS)
        lane_of: dict[str, str] = {}
        for lane in lanes:
            for ref in lane.iterfind("bpmn:flowNodeRef", NS):
                lane_of[(ref.text or "").strip()] = lane.get("name") or ""
            if lane.find("bpmn:childLaneSet/bpmn:lane", NS) is not None:
                continue  # a lane that only groups other lanes needs no role
            if role_for_lane(lane.get("name")) is None:
                what = (f'lane "{lane.get("name").strip()}" is not a known role'
                        if (lane.get("name") or "").strip()
                        else f'lane "{lane.get("id")}" has no name, so it names no role')
                self.add(doc, lane, f"{what} (known: {', '.join(ROLES)}; case and spaces "
                                    "are ignored)")
        if not lanes:
            return
        for task in process.iter(f"{{{NS['bpmn']}}}userTask", f"{{{NS['bpmn']}}}manualTask"):
            if _effective_lane(task, lane_of) is None:
                self.add(doc, task, f"{describe(task)} is in no lane; in a process with lanes "
                                    "every user or manual task must be in a lane that names a role")

    # -- DMN ---------------------------------------------------------------------------------

    def check_dmn(self, doc: Doc) -> None:
        if local_name(doc.root) != "definitions":
            self.problems.append(doc.problem(doc.root, "not a DMN document: the root element is "
                                                       f"{local_name(doc.root)}, not definitions"))
            return
        decisions = dmn_decisions(doc)
        if not decisions:
            self.problems.append(Problem(doc.name, 1, "no decision in this DMN file"))
        for extra in decisions[1:]:
            self.add(doc, extra, f"{describe(extra)}: only one decision per DMN file is "
                                 "supported; move it to a file of its own")
        for decision in decisions:
            tables = [c for c in decision if local_name(c) == "decisionTable"]
            if not tables:
                self.add(doc, decision, f"{describe(decision)} has no decision table; only "
                                        "decision tables are supported")
            for table in tables:
                self._check_table(doc, decision, table)

    def _check_table(self, doc: Doc, decision: etree._Element, table: etree._Element) -> None:
        inputs = [c for c in table if local_name(c) == "input"]
        for column in inputs:
            for text in _dmn_children(column, "inputExpression", "text"):
                name = column.get("label") or column.get("id")
                self._code(doc, column, text, f'input expression of column "{name}" in decision '
                                              f"{label(decision)}", "eval")
        columns = {"input": len(inputs), "output": sum(local_name(c) == "output" for c in table)}
        for number, rule in enumerate((c for c in table if local_name(c) == "rule"), 1):
            where = f"rule {number} ({rule.get('id')}) of decision {label(decision)}"
            for kind, count in columns.items():
                entries = sum(local_name(c) == f"{kind}Entry" for c in rule)
                if entries != count:
                    self.add(doc, rule, f"{where} has {entries} {kind} entries but the table "
                                        f"has {count} {kind} columns")
            for text in _dmn_children(rule, "inputEntry", "text"):
                self._check_input_entry(doc, text, f"input entry of {where}")
            for text in _dmn_children(rule, "outputEntry", "text"):
                self._code(doc, text.getparent(), text, f"output entry of {where}", "eval")

    def _check_input_entry(self, doc: Doc, text_el: etree._Element, what: str) -> None:
        """An input entry is a value, a comparison missing its left side ("> 5"), or uses "?"."""
        text = (text_el.text or "").strip()
        if not text or text == "-":
            return
        if _DMN_PLACEHOLDER.search(text):
            candidates = [_DMN_PLACEHOLDER.sub("dmninputexpr", text)]
        else:
            candidates = [text, "v " + text]
        if any(not sandbox.syntax_errors(c, "eval") for c in candidates):
            return
        owner = text_el.getparent()
        for _line, message in sandbox.syntax_errors(candidates[0], "eval"):
            message = _LINE_PREFIX.sub("", message, count=1)
            self.add(doc, owner, f"{what}: {message}", at=text_el)


def _effective_lane(task: etree._Element, lane_of: dict[str, str]) -> str | None:
    """The lane SpiffWorkflow gives a task: its own, else that of its enclosing subprocess."""
    el = task
    while el is not None and local_name(el) != "process":
        if el.get("id") in lane_of:
            return lane_of[el.get("id")]
        el = el.getparent()
    return None


def _dmn_children(el: etree._Element, *path: str) -> list[etree._Element]:
    found = [el]
    for name in path:
        found = [c for parent in found for c in parent if local_name(c) == name]
    return found
