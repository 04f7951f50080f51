"""Loading BPMN/DMN files (and their forms) into deployable bundles, or specific problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from engine.definition_files import Problem, UserTaskInfo, load_directory, load_files
from engine.definition_files.checks import NO_EXECUTABLE_PROCESS
from engine.spiff import loads_specs

DEFINITIONS = Path(__file__).parent / "fixtures" / "definitions"
GOOD = DEFINITIONS / "good"
PROBLEMS = DEFINITIONS / "problems"
# A copy of shared/corpus/miwg (CC BY 3.0, see SOURCE.md there), so that CI always runs these.
MIWG = Path(__file__).parent / "fixtures" / "miwg"


def _good_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (GOOD / "processes").glob("*.*")}


def _load_problem_fixtures(*names: str):
    return load_files({n: (PROBLEMS / n).read_bytes() for n in names},
                      forms_dirs=[PROBLEMS / "forms"])


# -- a good set ---------------------------------------------------------------------------


def test_good_set_gives_one_bundle_per_executable_process():
    bundles, problems = load_directory(GOOD / "processes")
    assert problems == []
    assert [(b.process_id, b.name) for b in bundles] == [
        ("complaint_resolution", "Complaint resolution"),
        ("complaint_review", "Complaint review"),
    ]


def test_bundle_sources_hold_called_processes_decisions_and_forms_transitively():
    bundles, _ = load_directory(GOOD / "processes")
    by_id = {b.process_id: b for b in bundles}
    assert sorted(by_id["complaint_review"].sources) == [
        "complaint_review.bpmn", "forms/log.json", "forms/resolution.json",
        "forms/resolution.ui.json", "forms/review.json", "priority.dmn", "resolution.bpmn",
    ]
    assert sorted(by_id["complaint_resolution"].sources) == [
        "forms/resolution.json", "forms/resolution.ui.json", "priority.dmn", "resolution.bpmn",
    ]
    sources = by_id["complaint_review"].sources
    assert sources["forms/log.json"] == (GOOD / "forms" / "log.json").read_text()
    assert sources["priority.dmn"] == (GOOD / "processes" / "priority.dmn").read_text()


def test_user_tasks_of_the_process_and_its_subprocesses_carry_lane_role_and_forms():
    bundles, _ = load_directory(GOOD / "processes")
    review = next(b for b in bundles if b.process_id == "complaint_review")
    assert review.user_tasks == (
        UserTaskInfo("log", "Log the complaint", "Staff", "staff", "log.json", None),
        UserTaskInfo("qm_review", "Quality Manager review", "Quality Manager",
                     "quality_manager", "review.json", None),
        UserTaskInfo("record_resolution", "Record the resolution", "Complaint Owner",
                     "complaint_owner", "resolution.json", "resolution.ui.json"),
    )


def test_specs_json_runs_through_the_gateway_condition():
    bundles, _ = load_directory(GOOD / "processes")
    review = next(b for b in bundles if b.process_id == "complaint_review")
    spec, subprocess_specs = loads_specs(review.specs_json)
    assert set(subprocess_specs) == {"complaint_resolution"}
    workflow = BpmnWorkflow(spec, subprocess_specs)
    workflow.do_engine_steps()
    [log] = workflow.get_tasks(state=TaskState.READY, manual=True)
    assert log.task_spec.bpmn_id == "log"
    log.set_data(classification="major")
    log.run()
    workflow.do_engine_steps()
    ready = workflow.get_tasks(state=TaskState.READY, manual=True)
    assert [t.task_spec.bpmn_id for t in ready] == ["qm_review"]


def test_sha256_is_stable_and_changes_when_a_needed_form_changes(tmp_path):
    shutil.copytree(GOOD, tmp_path / "set")
    processes = tmp_path / "set" / "processes"
    first = {b.process_id: b.sha256 for b in load_directory(processes)[0]}
    assert first == {b.process_id: b.sha256 for b in load_directory(processes)[0]}

    form = tmp_path / "set" / "forms" / "review.json"
    form.write_text(form.read_text().replace("Quality Manager review", "QM review"))
    changed = {b.process_id: b.sha256 for b in load_directory(processes)[0]}
    assert changed["complaint_review"] != first["complaint_review"]
    assert changed["complaint_resolution"] == first["complaint_resolution"]  # does not use it


def test_load_directory_skips_the_tests_folder():
    # processes/tests/ holds scenario JSON and a malformed ignored.bpmn
    _, problems = load_directory(GOOD / "processes")
    assert not [p for p in problems if "tests/" in p.file]


def test_forms_beside_the_processes_win_over_the_sibling_forms_folder(tmp_path):
    shutil.copytree(GOOD, tmp_path / "set")
    own = tmp_path / "set" / "processes" / "forms"
    own.mkdir()
    (own / "log.json").write_text('{"type": "object", "title": "own"}')
    bundles, problems = load_directory(tmp_path / "set" / "processes")
    assert problems == []
    review = next(b for b in bundles if b.process_id == "complaint_review")
    assert review.sources["forms/log.json"] == '{"type": "object", "title": "own"}'


def test_load_files_takes_uploaded_forms():
    forms = {p.name: p.read_bytes() for p in (GOOD / "forms").glob("*.json")}
    bundles, problems = load_files(_good_files(), forms, forms_dirs=())
    assert problems == []
    assert len(bundles) == 2


def test_one_problem_anywhere_means_no_bundle_at_all():
    files = _good_files() | {"missing_call.bpmn": (PROBLEMS / "missing_call.bpmn").read_bytes()}
    bundles, problems = load_files(files, forms_dirs=[GOOD / "forms"])
    assert bundles == []
    assert [(p.file, p.line) for p in problems] == [("missing_call.bpmn", 7)]


def test_problem_prints_as_file_line_message():
    assert str(Problem("a.bpmn", 12, "boom")) == "a.bpmn:12: boom"
    assert str(Problem("a.bpmn", None, "boom")) == "a.bpmn:0: boom"


def test_a_file_that_is_neither_bpmn_nor_dmn_is_a_problem():
    _, problems = load_files({"notes.txt": b"hello"}, forms_dirs=())
    assert [str(p) for p in problems] == ["notes.txt:0: not a BPMN (.bpmn) or DMN (.dmn) file"]


def test_xml_entities_are_not_resolved():
    evil = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            b'id="d" targetNamespace="t"><bpmn:process id="p" name="&x;" isExecutable="true">'
            b'<bpmn:startEvent id="s"/></bpmn:process></bpmn:definitions>')
    bundles, problems = load_files({"evil.bpmn": evil}, forms_dirs=())
    assert "root:" not in "".join(map(str, problems)) + "".join(b.name for b in bundles)


# -- one fixture per rule: each problem at its exact line ----------------------------------

RULES = {
    "well-formed XML": (["malformed.bpmn"], [
        ("malformed.bpmn", 8, "XML is not well-formed: Opening and ending tag mismatch: "
                              "userTask line 7 and process"),
    ]),
    "BPMN schema": (["schema_invalid.bpmn"], [
        ("schema_invalid.bpmn", 7, "does not match the BPMN schema: Element 'bpmn:task', "
                                   "attribute 'completionQuantity': 'one' is not a valid value"),
    ]),
    "engine: service task without operator": (["service_task.bpmn"], [
        ("service_task.bpmn", 7, 'service task "Send letter" (send_letter) has no '
                                 "spiffworkflow:serviceTaskOperator"),
    ]),
    "engine: unsupported element": (["unsupported_element.bpmn"], [
        ("unsupported_element.bpmn", 7,
         'complex gateway "Decide" (complex) is not supported by the engine'),
    ]),
    "engine: no start event": (["no_start_event.bpmn"], [
        ("no_start_event.bpmn", 5, 'process "No start" (no_start_event) has no start event'),
    ]),
    "engine: event definitions": (["events.bpmn"], [
        ("events.bpmn", 17, 'boundary event "Failed" (failed) refers to error "Error_failed", '
                            "which is not defined"),
        ("events.bpmn", 19, 'intermediate catch event "Wait" (wait) has no event definition'),
    ]),
    "no executable process": (["not_executable.bpmn"], [
        ("not_executable.bpmn", 1, NO_EXECUTABLE_PROCESS),
    ]),
    "call activity to a missing process": (["missing_call.bpmn"], [
        ("missing_call.bpmn", 7, 'call activity "Escalate" (escalate) calls process '
                                 '"escalation", which is not in any of the loaded files'),
    ]),
    "business rule task with a missing decision": (["missing_decision.bpmn"], [
        ("missing_decision.bpmn", 7, 'business rule task "Classify" (classify) uses decision '
                                     '"classification", which is not in any loaded DMN file'),
    ]),
    "script, condition, pre/post script and timer syntax": (["bad_expressions.bpmn"], [
        ("bad_expressions.bpmn", 10,
         'script of task "Assign reference" (assign_reference): syntax error'),
        ("bad_expressions.bpmn", 16, 'postScript of user task "Review" (review): syntax error'),
        ("bad_expressions.bpmn", 23, 'timeDuration of boundary event "Review late" '
                                     '(review_late) is the bare ISO-8601 text PT72H'),
        ("bad_expressions.bpmn", 27, 'timeDate of intermediate catch event "Wait until due" '
                                     "(wait): syntax error"),
        ("bad_expressions.bpmn", 34, 'condition of sequence flow "f_major": syntax error'),
    ]),
    "DMN expression syntax": (["bad_expressions.dmn"], [
        ("bad_expressions.dmn", 8, 'input expression of column "Classification" in decision '
                                   '"Bad priority" (bad_priority): syntax error'),
        ("bad_expressions.dmn", 13, "input entry of rule 1 (Rule_1) of decision"),
        ("bad_expressions.dmn", 14, "output entry of rule 1 (Rule_1) of decision"),
    ]),
    "gateway flows need a condition or to be the default": (["gateways.bpmn"], [
        ("gateways.bpmn", 13, 'sequence flow "Flow_3" leaves exclusive gateway "Is it major?" '
                              "(is_major) with no condition and the gateway has no default"),
        ("gateways.bpmn", 22, 'sequence flow "Finance" (Flow_6) leaves inclusive gateway '
                              '"Which teams?" (which) with no condition and is not the '
                              'gateway\'s default ("Flow_4")'),
    ]),
    "forms exist and are valid": (["forms.bpmn"], [
        ("forms.bpmn", 9, 'user task "missing_form" names form "missing.json", which was not '
                          "found (looked in: "),
        ("forms.bpmn", 33, 'user task "outside" names form "../secret.json": a form must be a '
                           "file name inside the forms folder"),
        ("forms/bad_schema.json", 5, "form is not a valid JSON Schema (Draft 2020-12) at "
                                     "$.properties.summary.type: 'text' is not valid"),
        ("forms/not_json.json", 4, "form is not valid JSON: Expecting ',' delimiter"),
        ("forms/ui_list.json", 1, "UI schema must be a JSON object, not list"),
    ]),
    "lanes name roles": (["lanes.bpmn"], [
        ("lanes.bpmn", 11, 'lane "Finance Team" is not a known role (known: staff, '
                           "operations_director, complaint_owner, quality_manager,"),
        ("lanes.bpmn", 18, 'manual task "Post the cheque" (post) is in no lane'),
    ]),
    "duplicate process ids": (["duplicate_a.bpmn", "duplicate_b.bpmn"], [
        ("duplicate_b.bpmn", 5, 'process id "complaint" is already defined in '
                                "duplicate_a.bpmn:5"),
    ]),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_reports_its_problem_at_the_exact_line(rule):
    names, expected = RULES[rule]
    bundles, problems = _load_problem_fixtures(*names)
    assert bundles == []
    assert [(p.file, p.line) for p in problems] == [(f, line) for f, line, _ in expected]
    for problem, (_, _, start) in zip(problems, expected, strict=True):
        assert problem.message.startswith(start), str(problem)


def test_call_to_a_process_that_is_not_executable():
    files = _good_files()
    files["resolution.bpmn"] = files["resolution.bpmn"].replace(
        b'isExecutable="true"', b'isExecutable="false"')
    _, problems = load_files(files, forms_dirs=[GOOD / "forms"])
    assert [str(p) for p in problems] == [
        'complaint_review.bpmn:57: call activity "Resolve" (resolve) calls process '
        '"complaint_resolution" (resolution.bpmn:5), which is not executable '
        '(isExecutable="false")',
        f"resolution.bpmn:1: {NO_EXECUTABLE_PROCESS}",
    ]


def test_flow_to_a_missing_element_names_the_source_and_target():
    files = _good_files()
    files["complaint_review.bpmn"] = files["complaint_review.bpmn"].replace(
        b'targetRef="end_minor"', b'targetRef="nowhere"')
    _, problems = load_files(files, forms_dirs=[GOOD / "forms"])
    assert [str(p) for p in problems] == [
        'complaint_review.bpmn:35: exclusive gateway "Is it major?" (is_major) has an outgoing '
        'sequence flow to "nowhere", which is not in the same process',
    ]


def test_business_rule_task_using_a_broken_decision_reports_only_the_decision():
    files = {n: (PROBLEMS / n).read_bytes() for n in ("missing_decision.bpmn",
                                                      "bad_expressions.dmn")}
    files["missing_decision.bpmn"] = files["missing_decision.bpmn"].replace(
        b">classification<", b">bad_priority<")
    _, problems = load_files(files, forms_dirs=())
    assert {p.file for p in problems} == {"bad_expressions.dmn"}


def test_missing_directory_is_a_problem(tmp_path):
    assert load_directory(tmp_path / "nope") == (
        [], [Problem(str(tmp_path / "nope"), None, "no such directory")])


# -- diagrams made by other tools (BPMN MIWG reference set) ---------------------------------

DATA_STORE = "is not supported: this engine has no data store implementations"
MIWG_AS_GIVEN = {
    "A.1.0.bpmn": [(1, NO_EXECUTABLE_PROCESS)],
    "A.2.0.bpmn": [(1, NO_EXECUTABLE_PROCESS)],
    "A.2.1.bpmn": [(1, NO_EXECUTABLE_PROCESS)],
    "A.3.0.bpmn": [(1, NO_EXECUTABLE_PROCESS)],
    "A.4.0.bpmn": [(1, NO_EXECUTABLE_PROCESS)],
    "A.4.1.bpmn": [(1, NO_EXECUTABLE_PROCESS)],
    # A diagram that deploys nothing gets exactly one problem, whatever else it holds.
    "B.1.0.bpmn": [(1, NO_EXECUTABLE_PROCESS)],
    "B.2.0.bpmn": [(1, NO_EXECUTABLE_PROCESS)],
}


def _miwg(name: str) -> bytes:
    return (MIWG / name).read_bytes()


@pytest.mark.parametrize("name", list(MIWG_AS_GIVEN))
def test_miwg_diagram_gives_a_specific_problem(name):
    bundles, problems = load_files({name: _miwg(name)}, forms_dirs=())
    assert bundles == []
    assert [(p.line, p.message) for p in problems] == MIWG_AS_GIVEN[name]


@pytest.mark.parametrize("name", list(MIWG_AS_GIVEN))
def test_miwg_diagram_marked_executable_deploys_or_gives_located_problems(name):
    data = _miwg(name).replace(b'isExecutable="false"', b'isExecutable="true"')
    bundles, problems = load_files({name: data}, forms_dirs=())
    assert bool(bundles) != bool(problems)
    assert all(p.file == name and p.line for p in problems), [str(p) for p in problems]
    assert not [p for p in problems if "could not" in p.message]


def test_miwg_a10_marked_executable_deploys():
    data = _miwg("A.1.0.bpmn").replace(b'isExecutable="false"', b'isExecutable="true"')
    bundles, problems = load_files({"A.1.0.bpmn": data}, forms_dirs=())
    assert problems == []
    assert [b.process_id for b in bundles] == ["WFP-6-"]


def test_miwg_a30_marked_executable_names_the_collapsed_subprocess():
    data = _miwg("A.3.0.bpmn").replace(b'isExecutable="false"', b'isExecutable="true"')
    _, problems = load_files({"A.3.0.bpmn": data}, forms_dirs=())
    assert [str(p) for p in problems] == [
        'A.3.0.bpmn:11: sub process "Collapsed Sub-Process" '
        "(_1ae31d1b-2559-4f78-a3ec-47986a49db48): Exactly one start event is required in a "
        "SubWorkflow Task; found 0",
    ]


# -- references that SpiffWorkflow would silently ignore ------------------------------------

_MINIMAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="D" targetNamespace="t">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>missing</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="t" name="Task">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="dueAt" value="DUE"/>
      </spiffworkflow:properties></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_outgoing_reference_to_missing_flow_is_reported_at_its_line():
    bundles, problems = load_files({"p.bpmn": _MINIMAL.replace(b"DUE", b"deadline")},
                                   forms_dirs=())
    assert bundles == []
    assert [(p.line, p.message) for p in problems] == [
        (5, 'start event "start" lists outgoing flow "missing", but the process has no '
            'sequence flow with that id')]


def test_due_at_property_must_be_an_expression():
    fixed = _MINIMAL.replace(b"<bpmn:outgoing>missing</bpmn:outgoing>", b"")
    bundles, problems = load_files({"p.bpmn": fixed.replace(b"DUE", b"add_days(")},
                                   forms_dirs=())
    assert bundles == []
    assert len(problems) == 1 and problems[0].line == 8
    assert problems[0].message.startswith('dueAt property of user task "Task" (t):')


def test_instructions_template_must_compile():
    fixed = _MINIMAL.replace(b"<bpmn:outgoing>missing</bpmn:outgoing>", b"").replace(
        b"DUE", b"deadline")
    broken = fixed.replace(
        b"</spiffworkflow:properties>",
        b"</spiffworkflow:properties>\n<spiffworkflow:instructionsForEndUser>Call {{ name"
        b"</spiffworkflow:instructionsForEndUser>")
    bundles, problems = load_files({"p.bpmn": broken}, forms_dirs=())
    assert bundles == []
    assert len(problems) == 1 and problems[0].line == 10
    assert problems[0].message.startswith('instructions of user task "Task" (t):')
