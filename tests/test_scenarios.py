"""Scenario tests of definitions (``complaints definitions test``): in memory, no database."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from SpiffWorkflow.task import TaskState

from engine import clock, runtime, spiff
from engine.calendar import BusinessCalendar
from engine.cli import main
from engine.definition_files import load_directory
from engine.roles import task_assignment
from engine.scenarios import ScenarioFileError, case_data, parse_scenario, run_directory

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "scenarios"
PROCESS_DIR = FIXTURES / "process"
HAPPY = json.loads((PROCESS_DIR / "tests" / "happy_path.json").read_text())
RECEIVED = "2026-12-21T14:30:00+00:00"


def _definitions(tmp_path: Path, source: Path = PROCESS_DIR) -> Path:
    """A copy of a fixture's diagrams and forms, with an empty tests/ folder."""
    directory = tmp_path / "defs"
    shutil.copytree(source, directory, ignore=shutil.ignore_patterns("tests"))
    (directory / "tests").mkdir()
    return directory


def _write(directory: Path, name: str, scenario: dict | str) -> Path:
    path = directory / "tests" / name
    path.write_text(scenario if isinstance(scenario, str) else json.dumps(scenario, indent=2))
    return path


def _scenario(steps: list, expect: dict | None = None, **overrides) -> dict:
    scenario = {"name": "a scenario", "process": "complaint_scenario",
                "start": {"received_at": RECEIVED}, "steps": steps, "expect": expect or {}}
    scenario.update(overrides)
    return scenario


def _failures(tmp_path: Path, scenario: dict | str) -> list[str]:
    directory = _definitions(tmp_path)
    _write(directory, "one.json", scenario)
    report = run_directory(directory)
    assert not report.problems
    [result] = report.results
    assert not result.passed
    return list(result.failures)


def _cli(capsys, *args: str) -> tuple[int, list[str], str]:
    code = main(["definitions", "test", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


# -- passing -------------------------------------------------------------------------------


def test_the_fixture_scenarios_pass():
    report = run_directory(PROCESS_DIR)
    assert report.ok and report.exit_code == 0
    assert [(r.name, r.file, r.passed) for r in report.results] == [
        ("minor complaint, happy path", "tests/happy_path.json", True),
        ("late logging and an overdue investigation are escalated",
         "tests/overdue_escalations.json", True),
    ]
    assert report.lines()[-1] == "2 passed, 0 failed"


def test_cli_prints_one_line_per_scenario_and_the_summary(capsys):
    code, lines, _ = _cli(capsys, str(PROCESS_DIR))
    assert code == 0
    assert lines == [
        "PASS minor complaint, happy path (tests/happy_path.json)",
        "PASS late logging and an overdue investigation are escalated "
        "(tests/overdue_escalations.json)",
        "2 passed, 0 failed",
    ]


def test_cli_exits_1_when_a_scenario_fails(tmp_path, capsys):
    directory = _definitions(tmp_path)
    _write(directory, "a_good.json", HAPPY)
    bad = copy.deepcopy(HAPPY)
    bad["name"] = "wrong status"
    bad["expect"]["status"] = "open"
    _write(directory, "b_bad.json", bad)
    code, lines, _ = _cli(capsys, str(directory))
    assert code == 1
    assert lines == [
        "PASS minor complaint, happy path (tests/a_good.json)",
        "FAIL wrong status (tests/b_bad.json)",
        '  expect.status: expected "open", got "closed"',
        "1 passed, 1 failed",
    ]


def test_no_scenarios_is_not_a_failure(tmp_path, capsys):
    directory = _definitions(tmp_path)
    code, lines, _ = _cli(capsys, str(directory))
    assert code == 0
    assert lines == [f"no scenarios in {directory / 'tests'}"]
    shutil.rmtree(directory / "tests")
    assert run_directory(directory).summary() == f"no scenarios in {directory / 'tests'}"


def test_cli_refuses_a_missing_directory(tmp_path, capsys):
    code, lines, err = _cli(capsys, str(tmp_path / "nowhere"))
    assert code == 1 and lines == []
    assert "no such directory" in err


# -- steps that diverge ----------------------------------------------------------------------


def test_a_task_out_of_order_names_the_step_and_the_ready_tasks(tmp_path):
    failures = _failures(tmp_path, _scenario([
        {"advance": {"days": 2}},
        {"task": "send_acknowledgement"},
        {"task": "classify", "data": {"classification": "minor", "owner": "olivia"}},
    ], {"finished": True}))
    assert failures == [
        'step 2: expected task "send_acknowledgement" but the ready tasks are: '
        'complete_register_record ("Complete the register record"), escalate_log_deadline '
        '("Logging deadline missed")'
    ]


def test_a_task_when_none_is_ready_says_what_the_process_waits_for(tmp_path):
    failures = _failures(tmp_path, _scenario(
        [{"task": "complete_register_record", "data": {"summary": "x"}},
         {"task": "send_acknowledgement"},
         {"task": "classify", "data": {"classification": "minor", "owner": "olivia"}},
         {"task": "investigate"}, {"task": "resolve"}, {"task": "resolve"}]))
    assert failures == ['step 6: expected task "resolve" but no task is ready: the process has '
                        "finished"]


def test_form_errors_fail_the_step_with_every_field(tmp_path):
    failures = _failures(tmp_path, _scenario([
        {"task": "complete_register_record", "data": {"summary": "x"}},
        {"task": "send_acknowledgement", "data": {}},
        {"task": "classify", "data": {"classification": "urgent", "colour": "red"}},
        {"task": "investigate"},
    ]))
    assert len(failures) == 1
    lines = failures[0].split("\n")
    assert lines[0] == ('step 3: the data for task "classify" was refused by form '
                        "classify.json: the form has errors")
    assert lines[1:] == [
        "classification: 'urgent' is not one of ['minor', 'major']",
        "colour: this form has no such field",
        "owner: this field is required",
    ]


def test_data_for_a_task_without_a_form_is_refused(tmp_path):
    failures = _failures(tmp_path, _scenario([
        {"task": "complete_register_record", "data": {"summary": "x"}},
        {"task": "send_acknowledgement", "data": {"sent": True}},
    ]))
    assert failures == ['step 2: the data for task "send_acknowledgement" was refused: this '
                        "task has no form, so it takes no data\nsent: this task has no such field"]


def test_a_script_error_fails_the_step_with_the_engines_message(tmp_path):
    directory = _definitions(tmp_path, FIXTURES / "script_error")
    _write(directory, "s.json", _scenario([{"task": "enter"}], process="script_error", start={}))
    [result] = run_directory(directory).results
    [failure] = result.failures
    assert failure.startswith(  # SpiffWorkflow may add a "Did you mean ...?" hint
        'step 1: completing task "enter" failed: Script Task "Compute the refund": '
        "name 'amount' is not defined")


def test_a_script_error_at_start_is_reported(tmp_path):
    failures = _failures(tmp_path, _scenario([], start={"channel": "email"}))
    assert len(failures) == 1
    assert failures[0].startswith("start: the process stopped with an error: ")
    assert "received_at" in failures[0] and "Set deadlines" in failures[0]


def test_role_and_assignee_mismatches_are_reported_and_the_scenario_goes_on(tmp_path):
    scenario = copy.deepcopy(HAPPY)
    scenario["steps"][0]["expect_role"] = "quality_manager"
    scenario["steps"][3]["expect_assignee"] = "oscar"
    scenario["expect"]["status"] = "open"
    assert _failures(tmp_path, scenario) == [
        'step 1: task "complete_register_record" goes to role "staff", '
        'expected "quality_manager"',
        'step 4: task "investigate" is assigned to "olivia", expected "oscar"',
        'expect.status: expected "open", got "closed"',
    ]


# -- timers and the clock ----------------------------------------------------------------------


def test_advancing_past_a_deadline_fires_the_boundary_timer(tmp_path):
    escalate = {"task": "escalate_log_deadline", "expect_role": "quality_manager"}
    failures = _failures(tmp_path, _scenario([{"advance": {"hours": 23}}, escalate]))
    assert failures == ['step 2: expected task "escalate_log_deadline" but the ready tasks '
                        'are: complete_register_record ("Complete the register record")']

    directory = _definitions(tmp_path / "second")
    _write(directory, "late.json", _scenario(
        [{"advance": {"days": 1, "seconds": 1}}, escalate],
        {"path": ["escalate_log_deadline"], "finished": False, "status": "received"}))
    assert run_directory(directory).ok


def test_a_clock_set_exactly_to_the_deadline_does_not_fire_it(tmp_path):
    escalate = {"task": "escalate_log_deadline"}
    failures = _failures(tmp_path, _scenario([{"clock": "2026-12-22T14:30:00+00:00"}, escalate]))
    assert failures[0].startswith('step 2: expected task "escalate_log_deadline" but')

    directory = _definitions(tmp_path / "second")
    _write(directory, "late.json", _scenario([{"clock": "2026-12-22T14:30:01Z"}, escalate]))
    assert run_directory(directory).ok


def test_the_clock_cannot_go_back(tmp_path):
    assert _failures(tmp_path, _scenario([{"clock": "2026-12-21T14:29:59+00:00"}])) == [
        "step 1: the clock cannot go back from 2026-12-21T14:30:00+00:00 to "
        "2026-12-21T14:29:59+00:00"]


def test_the_clock_starts_at_the_scenario_clock(tmp_path):
    # Received on Monday but the engine clock starts on Wednesday: the logging timer,
    # due on Tuesday, is already past, so it fires at the start.
    directory = _definitions(tmp_path)
    _write(directory, "s.json", _scenario(
        [{"task": "escalate_log_deadline"}], {"path": ["escalate_log_deadline"]},
        clock="2026-12-23T09:00:00+00:00"))
    assert run_directory(directory).ok


def test_the_engine_clock_is_restored_after_the_run():
    before = clock.current()
    assert run_directory(PROCESS_DIR).ok
    assert clock.current() is before


# -- expectations ----------------------------------------------------------------------------------


def test_deadline_mismatches_print_expected_and_actual(tmp_path):
    scenario = copy.deepcopy(HAPPY)
    scenario["expect"]["deadlines"] = {
        "log_by": "2026-12-23T14:30:00+00:00",   # wrong
        "acknowledge_by": "2026-12-24T14:30:00Z",  # right, written differently
        "respond_by": "2027-02-21T14:30:00+00:00",  # no such deadline
        "investigate_by": None,  # it is set
    }
    assert _failures(tmp_path, scenario) == [
        "expect.deadlines.log_by: expected 2026-12-23T14:30:00+00:00, "
        "got 2026-12-22T14:30:00+00:00",
        "expect.deadlines.respond_by: expected 2027-02-21T14:30:00+00:00, but the case has no "
        "such deadline (deadlines: acknowledge_by, investigate_by, log_by)",
        "expect.deadlines.investigate_by: expected no such deadline, got "
        "2027-01-07T14:30:00+00:00",
    ]


def test_path_data_and_finished_mismatches(tmp_path):
    scenario = copy.deepcopy(HAPPY)
    scenario["steps"] = scenario["steps"][:3]
    scenario["expect"]["data"] = {"classification": "major", "refund": 10}
    failures = _failures(tmp_path, scenario)
    assert failures == [
        'expect.path: expected ["complete_register_record", "send_acknowledgement", '
        '"classify", "investigate", "resolve"], got ["complete_register_record", '
        '"send_acknowledgement", "classify"]',
        'expect.status: expected "closed", got "acknowledged"',
        'expect.data.classification: expected "major", got "minor"',
        'expect.data.refund: expected 10, but the case data has no "refund"',
        'expect.finished: expected true, got false (ready tasks: investigate ("Investigate"))',
    ]


def test_a_process_that_is_not_defined_fails_clearly(tmp_path):
    assert _failures(tmp_path, _scenario([], process="complaint_handling")) == [
        f'process "complaint_handling" is not defined in {tmp_path / "defs"} '
        "(executable processes: complaint_scenario)"]


# -- definitions and scenario files ---------------------------------------------------------


def test_an_invalid_diagram_reports_file_and_line_and_runs_nothing(capsys):
    report = run_directory(FIXTURES / "invalid")
    assert report.problems and not report.results and report.exit_code == 1
    code, lines, err = _cli(capsys, str(FIXTURES / "invalid"))
    assert code == 1
    assert lines == [
        'broken.bpmn:8: script of task "Set status" (set_status): syntax error: invalid syntax']
    assert "no scenario was run" in err


def test_invalid_json_names_the_file_and_line(tmp_path):
    text = '{\n  "name": "x",\n  "process": "complaint_scenario"\n  "start": {}\n}\n'
    directory = _definitions(tmp_path)
    _write(directory, "broken.json", text)
    [result] = run_directory(directory).results
    assert (result.name, result.file) == ("broken", "tests/broken.json")
    assert result.failures == (
        "tests/broken.json:4: not valid JSON: Expecting ',' delimiter (column 3)",)


def test_malformed_scenarios_list_every_mistake_with_its_line(tmp_path):
    text = """{
  "name": "malformed",
  "process": "complaint_scenario",
  "start": {"received_at": "2026-12-21T14:30:00+00:00"},
  "steps": [
    {"task": "complete_register_record", "data": {"summary": "x"}},
    {"wait": {"days": 1}},
    {"advance": {"days": -1}},
    {"advance": {"fortnights": 1}},
    {"clock": "2026-12-22"},
    {"task": "send_acknowledgement", "dta": {}},
    {"task": "classify", "advance": {"days": 1}}
  ],
  "expect": {"finish": true, "path": "classify"},
  "expects": {}
}
"""
    directory = _definitions(tmp_path)
    _write(directory, "bad.json", text)
    [result] = run_directory(directory).results
    assert result.name == "malformed" and not result.passed
    file = "tests/bad.json"
    assert list(result.failures) == [
        f'{file}:1: unknown key "expects" (a scenario has: "calendar", "clock", "description", '
        '"expect", "name", "process", "start", "steps")',
        f'{file}:7: step 2: unknown step kind: a step has exactly one of "task", "advance", '
        '"clock"; it has "wait"',
        f'{file}:8: step 3: "advance.days" must be a number, not negative; got -1',
        f'{file}:9: step 4: unknown unit(s) "fortnights" in "advance" (units: "weeks", "days", '
        '"hours", "minutes", "seconds")',
        f'{file}:10: step 5: "clock" must be an ISO-8601 date and time with an offset, such as '
        '2026-12-21T14:30:00+00:00; got "2026-12-22"',
        f'{file}:11: step 6: unknown key(s) "dta" in a "task" step (it takes "data", '
        '"expect_assignee", "expect_role", "task")',
        f'{file}:12: step 7: unknown step kind: a step has exactly one of "task", "advance", '
        '"clock"; it has "task", "advance"',
        f'{file}:14: unknown key "finish" in "expect" (it takes "path", "deadlines", "status", '
        '"data", "finished")',
        f'{file}:14: "expect.path" must be a list of BPMN task ids',
    ]


def test_missing_keys_and_duplicate_keys_are_errors():
    with pytest.raises(ScenarioFileError) as info:
        parse_scenario('{"name": "x",\n "name": "y", "steps": []}', "s.json")
    assert info.value.errors == [
        's.json:1: the key "name" appears twice in the same object',
        's.json:1: missing key "process"',
        's.json:1: missing key "start"',
        's.json:1: missing key "expect"',
    ]
    with pytest.raises(ScenarioFileError) as info:
        parse_scenario("[]", "s.json")
    assert info.value.errors[0].startswith("s.json:1: a scenario must be a JSON object")


def test_clock_and_calendar_defaults():
    scenario = parse_scenario(json.dumps(_scenario([])))
    assert scenario.clock == datetime(2026, 12, 21, 14, 30, tzinfo=UTC)
    assert scenario.calendar is None
    scenario = parse_scenario(json.dumps(_scenario([], start={}, calendar="gb-sct")))
    assert scenario.clock == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert scenario.calendar == "GB-SCT"
    with pytest.raises(ScenarioFileError) as info:
        parse_scenario(json.dumps(_scenario([], start={"received_at": "Monday"},
                                            calendar="FR")), "s.json")
    assert [e.split(":")[2] for e in info.value.errors] == [
        ' "calendar" must be one of GB-ENG, GB-WLS, GB-SCT, GB-NIR, got "FR"',
        ' "start.received_at" (the clock starts there unless "clock" is given) must be an '
        "ISO-8601 date and time with an offset, such as 2026-12-21T14"]


# -- subprocesses and case data ---------------------------------------------------------------


def test_tasks_inside_called_subprocesses(tmp_path):
    directory = _definitions(tmp_path, ROOT / "bench" / "processes")
    _write(directory, "major.json", {
        "name": "major complaint through the stages",
        "process": "complaint_bench",
        "start": {"received_at": RECEIVED, "owner": "owen"},
        "steps": [
            {"task": "log", "data": {"summary": "Broken parcel"}, "expect_role": "staff"},
            {"task": "acknowledge"},
            {"task": "classify", "data": {"classification": "major"}},
            {"task": "qm_review"},
            {"task": "investigate", "expect_role": "complaint_owner", "expect_assignee": "owen"},
            {"task": "resolve"},
            {"task": "close"},
        ],
        "expect": {"data": {"classification": "major", "summary": "Broken parcel"},
                   "finished": True},
    })
    report = run_directory(directory)
    assert report.ok, report.lines()


def _latest_completed(workflow) -> dict:
    """case_data's rule, the slow and obvious way."""
    tasks = [t for wf in (workflow, *workflow.subprocesses.values()) for t in wf.tasks.values()
             if t.state == TaskState.COMPLETED]
    return max(tasks, key=lambda t: t.last_state_change).data if tasks else {}


def test_case_data_is_the_data_of_the_latest_completed_task():
    bundles, _ = load_directory(ROOT / "bench" / "processes")
    bundle = next(b for b in bundles if b.process_id == "complaint_bench")
    forms = {"log": {"summary": "Broken parcel"}, "classify": {"classification": "major"}}
    with clock.using(clock.ManualClock(datetime(2026, 12, 21, 14, 30, tzinfo=UTC))):
        specs = spiff.loads_specs(bundle.specs_json)
        workflow = runtime.new_workflow(specs, BusinessCalendar(), {"received_at": RECEIVED})
        assert case_data(workflow) == {}
        assert runtime.run_steps(workflow) is None
        seen_statuses = []
        while not workflow.is_completed():
            assert case_data(workflow) == _latest_completed(workflow)
            # The register sync reads it from stored instances too.
            stored = spiff.loads_state(spiff.dumps_state(workflow), *specs)
            assert case_data(stored) == case_data(workflow)
            seen_statuses.append(case_data(workflow).get("status"))
            task = runtime.ready_human_tasks(workflow)[0]
            assert runtime.run_steps(workflow, task, forms.get(task.task_spec.name, {})) is None
        end = next(t for t in workflow.tasks.values() if t.task_spec.name == "End")
        assert case_data(workflow) == end.data
        assert case_data(spiff.loads_state(spiff.dumps_state(workflow), *specs)) == end.data
    assert len(set(seen_statuses)) > 2
    data = case_data(workflow)
    data["status"] = "changed"
    assert end.data["status"] != "changed"  # a copy


def test_task_assignment_is_the_projection_rule():
    assert task_assignment(None, {"owner": "olivia"}) == ("staff", None)
    assert task_assignment("Quality Manager", {"owner": "olivia"}) == ("quality_manager", None)
    assert task_assignment("Complaint Owner", {"owner": "olivia"}) == (
        "complaint_owner", "olivia")
    assert task_assignment("Complaint Owner", {"owner": ""}) == ("complaint_owner", None)
    assert task_assignment("Complaint Owner", {}) == ("complaint_owner", None)
    assert task_assignment("Catering", {}) == (None, None)
