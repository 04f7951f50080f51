"""Scenario tests of process definitions: ``complaints definitions test [DIR]``.

Process owners keep scenario files beside the diagrams, in ``DIR/tests/*.json``, and
run them against the diagrams on disk before deploying. Nothing touches a database:
the definitions are checked and built exactly as ``complaints definitions deploy``
does (``load_directory``), and every scenario runs in a fresh workflow in memory,
through the engine's own step function (``runtime.run_steps``), sandboxed script
engine, helpers and business calendar, on a manual clock.

A scenario file::

    {
      "name": "minor complaint, happy path",
      "process": "complaint_handling",
      "clock": "2026-12-21T14:30:00+00:00",
      "calendar": "GB-ENG",
      "start": {"received_at": "2026-12-21T14:30:00+00:00", "channel": "telephone"},
      "steps": [
        {"task": "complete_register_record", "data": {"summary": "..."}},
        {"advance": {"days": 4}},
        {"task": "send_acknowledgement", "data": {}, "expect_role": "staff"},
        {"clock": "2027-01-04T09:00:00+00:00"}
      ],
      "expect": {
        "path": ["complete_register_record", "send_acknowledgement"],
        "deadlines": {"log_by": "2026-12-22T14:30:00+00:00"},
        "status": "closed",
        "data": {"classification": "minor"},
        "finished": true
      }
    }

``name``, ``process``, ``start``, ``steps`` and ``expect`` are required; ``clock``
(the engine clock when the case starts; default ``start.received_at``, else
``DEFAULT_CLOCK``), ``calendar`` (a region such as GB-ENG; default from the settings,
with no closure days) and ``description`` are optional. Any other key is an error, so
that a misspelt expectation cannot pass silently.

Steps, in order:

``{"task": ID, "data": {...}, "expect_role": ROLE, "expect_assignee": USER}``
    completes the READY user task with that BPMN id (in the process or any of its
    subprocesses; the first if several are ready), after checking ``data`` (default
    ``{}``) against the task's form as the engine does. ``expect_role`` and
    ``expect_assignee`` (a username, or null for none) check who the engine would give
    the task to (``engine.roles.task_assignment``).
``{"advance": {"days": 4, "hours": 1}}``
    moves the clock on (weeks, days, hours, minutes, seconds; none negative).
``{"clock": ISO}``
    sets the clock to an instant, which must not be before the current one.

After every step (and after the start) the timers that are due fire, repeatedly, as
the worker keeps firing them while any is due; so a step leaves the case where the
running system would leave it moments later. As in SpiffWorkflow, a timer is due once
the clock is strictly past its time: a clock set exactly to a deadline does not fire it.

``expect`` (every key optional) is checked after the last step: ``path`` (the BPMN ids
of the tasks the steps completed, exactly), ``deadlines`` (a subset of the case's
``deadlines``, instants compared after normalisation; null means "not set"),
``status``, ``data`` (a subset of the case data, values compared exactly) and
``finished`` (whether the workflow completed). The case data is ``case_data``.

A scenario stops at the first step that cannot be done (task not ready, form errors,
a script error); a wrong ``expect_role``/``expect_assignee`` is reported and the
scenario goes on.
"""

from __future__ import annotations

import bisect
import functools
import json
import json.decoder
import json.scanner
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from SpiffWorkflow.task import Task

from engine import clock, runtime
from engine.calendar import REGIONS, BusinessCalendar, iso, parse_instant
from engine.case_data import case_data
from engine.definition_files import Bundle, Problem, load_directory
from engine.errors import InvalidData
from engine.forms import check_form_data
from engine.roles import task_assignment
from engine.settings import load as load_settings

__all__ = [
    "DEFAULT_CLOCK",
    "Report",
    "ScenarioFileError",
    "ScenarioResult",
    "case_data",
    "load_scenario",
    "parse_scenario",
    "run_directory",
    "run_file",
    "scenario_files",
]

SCENARIOS_DIR = "tests"
#: The engine clock at start when a scenario gives neither ``clock`` nor
#: ``start.received_at`` (a Monday, 09:00 in London).
DEFAULT_CLOCK = "2026-01-05T09:00:00+00:00"
#: Bound on rounds of due timers after one step (a timer that keeps coming due).
MAX_TIMER_ROUNDS = 100

_TOP_KEYS = {"name", "process", "clock", "calendar", "start", "steps", "expect", "description"}
_REQUIRED_KEYS = ("name", "process", "start", "steps", "expect")
_STEP_KINDS = ("task", "advance", "clock")
_TASK_STEP_KEYS = {"task", "data", "expect_role", "expect_assignee"}
_ADVANCE_UNITS = ("weeks", "days", "hours", "minutes", "seconds")
_EXPECT_KEYS = ("path", "deadlines", "status", "data", "finished")
_UNSET: Any = object()


# -- case data ---------------------------------------------------------------------------


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario file's outcome. A failure may span lines (form field errors)."""

    name: str
    file: str  # relative to the definitions directory, e.g. "tests/happy_path.json"
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        out = [f"{'PASS' if self.passed else 'FAIL'} {self.name} ({self.file})"]
        for failure in self.failures:
            first, *rest = failure.split("\n")
            out.append(f"  {first}")
            out.extend(f"    {line}" for line in rest)
        return out


@dataclass(frozen=True)
class Report:
    """The outcome of ``run_directory``: definition problems, or scenario results."""

    directory: Path
    problems: tuple[Problem, ...] = ()
    results: tuple[ScenarioResult, ...] = ()

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return not self.problems and self.failed == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        """``N passed, M failed``; or why nothing ran."""
        if self.problems:
            return f"{len(self.problems)} problem(s) in the definitions: no scenario was run"
        if not self.results:
            return f"no scenarios in {self.directory / SCENARIOS_DIR}"
        return f"{self.passed} passed, {self.failed} failed"

    def lines(self) -> list[str]:
        """The whole output: problems as FILE:LINE: message, or one block per scenario,
        then the summary line."""
        out = [str(p) for p in self.problems]
        for result in self.results:
            out.extend(result.lines())
        out.append(self.summary())
        return out


# -- running -----------------------------------------------------------------------------


def scenario_files(directory: Path) -> list[Path]:
    """The scenario files of a definitions directory: ``DIR/tests/*.json``, by name."""
    folder = Path(directory) / SCENARIOS_DIR
    return sorted(p for p in folder.glob("*.json") if p.is_file()) if folder.is_dir() else []


def run_directory(directory: Path,
                  on_result: Callable[[ScenarioResult], None] | None = None) -> Report:
    """Check the definitions of ``directory`` as deploy does, then run every scenario.

    When the definitions have problems no scenario runs. ``on_result`` is called after
    each scenario (the CLI prints as it goes).
    """
    directory = Path(directory)
    bundles, problems = load_directory(directory)
    if problems:
        return Report(directory, tuple(problems))
    by_id = {bundle.process_id: bundle for bundle in bundles}
    results = []
    for path in scenario_files(directory):
        result = run_file(path, by_id, directory)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return Report(directory, (), tuple(results))


def run_file(path: Path, bundles: Mapping[str, Bundle], directory: Path | None = None
             ) -> ScenarioResult:
    """Run one scenario file against ``bundles`` (process id -> bundle)."""
    path = Path(path)
    shown = _shown(path, directory)
    try:
        scenario = load_scenario(path, shown)
    except ScenarioFileError as exc:
        return ScenarioResult(exc.name or path.stem, shown, tuple(exc.errors))
    bundle = bundles.get(scenario.process)
    if bundle is None:
        known = ", ".join(sorted(bundles)) or "none"
        where = f" in {directory}" if directory is not None else ""
        return ScenarioResult(scenario.name, shown, (
            f'process "{scenario.process}" is not defined{where} '
            f"(executable processes: {known})",))
    try:
        failures = _Run(scenario, bundle).run()
    except Exception as exc:  # noqa: BLE001 - a bug or a broken setting must not stop the others
        failures = [f"the scenario could not run: {type(exc).__name__}: {exc}"]
    return ScenarioResult(scenario.name, shown, tuple(failures))


def _shown(path: Path, directory: Path | None) -> str:
    if directory is not None:
        try:
            return path.resolve().relative_to(Path(directory).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


class _Run:
    """One scenario in one fresh workflow, on its own manual clock."""

    def __init__(self, scenario: Scenario, bundle: Bundle):
        self.scenario = scenario
        self.bundle = bundle
        self.clock = clock.ManualClock(scenario.clock)
        self.failures: list[str] = []
        self.path: list[str] = []

    def run(self) -> list[str]:
        scenario = self.scenario
        calendar = _calendar(scenario.calendar)
        specs = runtime.specs_for(self.bundle.sha256, self.bundle.specs_json)
        with clock.using(self.clock):
            self.workflow = runtime.new_workflow(specs, calendar, dict(scenario.start))
            error = self._settle(runtime.run_steps(self.workflow))
            if error is not None:
                return [f"start: the process stopped with an error: {error}"]
            for step in scenario.steps:
                if not self._step(step):
                    return self.failures
            self._check_expectations()
        return self.failures

    def _settle(self, error: runtime.StepError | None) -> str | None:
        """Fire the timers that are due now, as the worker would, until none is."""
        for _ in range(MAX_TIMER_ROUNDS):
            if error is not None:
                return error.message
            # SpiffWorkflow fires a timer once the clock is strictly past its due time.
            due = runtime.next_timer_due(self.workflow)
            if due is None or due >= self.clock.now():
                return None
            error = runtime.run_steps(self.workflow)
        return f"timers kept coming due after {MAX_TIMER_ROUNDS} rounds (a timer loop?)"

    def _step(self, step: Step) -> bool:
        if step.kind == "task":
            return self._task_step(step)
        if step.kind == "advance":
            self.clock.advance(step.delta)
            what = f"advance to {iso(self.clock.now())}"
        else:
            if step.instant < self.clock.now():
                self.failures.append(
                    f"step {step.number}: the clock cannot go back from "
                    f"{iso(self.clock.now())} to {iso(step.instant)}")
                return False
            self.clock.set(step.instant)
            what = f"clock set to {iso(step.instant)}"
        error = self._settle(runtime.run_steps(self.workflow))
        if error is not None:
            self.failures.append(
                f"step {step.number} ({what}): a timer or what it started failed: {error}")
            return False
        return True

    def _task_step(self, step: Step) -> bool:
        n = step.number
        ready = runtime.ready_human_tasks(self.workflow)
        task = next((t for t in ready if t.task_spec.name == step.task), None)
        if task is None:
            self.failures.append(f'step {n}: expected task "{step.task}" but {self._why(ready)}')
            return False
        form = task.task_spec.extensions.get("properties", {}).get("formJsonSchemaFilename")
        try:
            check_form_data(self.bundle.sources, form, step.data)
        except InvalidData as exc:
            lines = [f'step {n}: the data for task "{step.task}" was refused'
                     f"{f' by form {form}' if form else ''}: {exc}"]
            lines += [f"{name}: {'; '.join(messages)}"
                      for name, messages in sorted(exc.fields.items())]
            self.failures.append("\n".join(lines))
            return False
        role, assignee = task_assignment(task.task_spec.lane, task.data)
        if step.expect_role is not _UNSET and step.expect_role != role:
            self.failures.append(
                f'step {n}: task "{step.task}" goes to role {_show(role)}, '
                f"expected {_show(step.expect_role)}")
        if step.expect_assignee is not _UNSET and step.expect_assignee != assignee:
            self.failures.append(
                f'step {n}: task "{step.task}" is assigned to {_show(assignee)}, '
                f"expected {_show(step.expect_assignee)}")
        who = assignee or f"({role or 'anyone'})"  # scenarios have no signed-in user
        error = self._settle(runtime.run_steps(self.workflow, task, step.data,
                                               completed_by=who))
        self.path.append(step.task)
        if error is not None:
            self.failures.append(f'step {n}: completing task "{step.task}" failed: {error}')
            return False
        return True

    def _why(self, ready: list[Task]) -> str:
        if ready:
            return "the ready tasks are: " + ", ".join(_describe(t) for t in ready)
        if self.workflow.is_completed():
            return "no task is ready: the process has finished"
        due = runtime.next_timer_due(self.workflow)
        if due is not None:
            return f"no task is ready: the process waits for a timer due at {iso(due)}"
        return "no task is ready: the process is waiting"

    def _check_expectations(self) -> None:
        expect = self.scenario.expect
        fail = self.failures.append
        if "path" in expect and expect["path"] != self.path:
            fail(f"expect.path: expected {_show(expect['path'])}, got {_show(self.path)}")
        data = case_data(self.workflow) if {"deadlines", "status", "data"} & expect.keys() else {}
        if "deadlines" in expect:
            self._check_deadlines(expect["deadlines"], data.get("deadlines", _UNSET))
        if "status" in expect and expect["status"] != data.get("status"):
            fail(f"expect.status: expected {_show(expect['status'])}, "
                 f"got {_show(data.get('status', None))}")
        for key, value in expect.get("data", {}).items():
            if key not in data:
                fail(f"expect.data.{key}: expected {_show(value)}, but the case data has no "
                     f'"{key}"')
            elif data[key] != value:
                fail(f"expect.data.{key}: expected {_show(value)}, got {_show(data[key])}")
        finished = self.workflow.is_completed()
        if "finished" in expect and expect["finished"] != finished:
            ready = runtime.ready_human_tasks(self.workflow)
            waiting = f" (ready tasks: {', '.join(_describe(t) for t in ready)})" if ready else ""
            fail(f"expect.finished: expected {_show(expect['finished'])}, "
                 f"got {_show(finished)}{waiting}")

    def _check_deadlines(self, expected: dict[str, str | None], actual: Any) -> None:
        fail = self.failures.append
        if actual is _UNSET or not isinstance(actual, dict):
            got = "the case data has no deadlines" if actual is _UNSET else (
                f"the case's deadlines are not an object: {_show(actual)}")
            fail(f"expect.deadlines: expected {_show(expected)}, but {got}")
            return
        for key, value in expected.items():
            have = actual.get(key)
            if value is None:
                if have is not None:
                    fail(f"expect.deadlines.{key}: expected no such deadline, got "
                         f"{_instant_text(have)}")
            elif key not in actual or have is None:
                others = ", ".join(sorted(actual)) or "none"
                fail(f"expect.deadlines.{key}: expected {iso(parse_instant(value))}, but the "
                     f"case has no such deadline (deadlines: {others})")
            elif not _same_instant(value, have):
                fail(f"expect.deadlines.{key}: expected {iso(parse_instant(value))}, "
                     f"got {_instant_text(have)}")


def _calendar(region: str | None) -> BusinessCalendar:
    """The scenario's region (default: the settings') in the configured time zone, with no
    company closure days."""
    settings = load_settings()
    return _cached_calendar(region or settings.calendar, settings.timezone)


@functools.lru_cache(maxsize=8)
def _cached_calendar(region: str, timezone: str) -> BusinessCalendar:
    # Cached so that the bank holidays of a year are computed once per run.
    return BusinessCalendar(region=region, timezone=timezone)


def _same_instant(expected: str, actual: Any) -> bool:
    try:
        return parse_instant(expected) == parse_instant(actual)
    except (TypeError, ValueError):
        return False


def _instant_text(value: Any) -> str:
    try:
        return iso(parse_instant(value))
    except (TypeError, ValueError):
        return _show(value)


def _describe(task: Task) -> str:
    spec = task.task_spec
    title = spec.bpmn_name
    return f'{spec.name} ("{title}")' if title and title != spec.name else spec.name


def _show(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


# -- scenario files ----------------------------------------------------------------------


class ScenarioFileError(Exception):
    """A scenario file that cannot be read: every error as ``FILE:LINE: message``."""

    def __init__(self, errors: list[str], name: str | None = None):
        super().__init__("\n".join(errors))
        self.errors = errors
        self.name = name


@dataclass(frozen=True)
class Step:
    number: int
    line: int | None
    kind: str  # "task", "advance" or "clock"
    task: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    expect_role: Any = _UNSET
    expect_assignee: Any = _UNSET
    delta: timedelta | None = None
    instant: datetime | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    process: str
    clock: datetime
    calendar: str | None
    start: dict[str, Any]
    steps: tuple[Step, ...]
    expect: dict[str, Any]


def load_scenario(path: Path, shown: str | None = None) -> Scenario:
    """Read and check one scenario file; raise ScenarioFileError listing every mistake."""
    shown = shown or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError([f"{shown}: cannot read the file: {exc}"]) from None
    return parse_scenario(text, shown)


def parse_scenario(text: str, shown: str = "<scenario>") -> Scenario:
    parsed = _LineJSON(text)
    try:
        document = parsed.load()
    except json.JSONDecodeError as exc:
        raise ScenarioFileError(
            [f"{shown}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})"]) from None
    return _ScenarioReader(parsed, shown).read(document)


class _LineJSON:
    """JSON parsed with the line of every object kept, and duplicate keys noticed."""

    def __init__(self, text: str):
        self.text = text
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self.lines: dict[int, int] = {}  # id(dict) -> line of its "{"
        self.duplicates: list[tuple[int, str]] = []

    def line_at(self, index: int) -> int:
        return bisect.bisect_left(self._newlines, index) + 1

    def line_of(self, obj: Any, default: int | None = None) -> int | None:
        return self.lines.get(id(obj), default)

    def load(self) -> Any:
        decoder = json.JSONDecoder()

        def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook,
                         memo=None):
            s, end = s_and_end
            pairs, new_end = json.decoder.JSONObject(
                s_and_end, strict, scan_once, None, list, memo)
            line = self.line_at(end - 1)
            obj: dict[str, Any] = {}
            for key, value in pairs:
                if key in obj:
                    self.duplicates.append((line, key))
                obj[key] = value
            self.lines[id(obj)] = line
            return obj, new_end

        decoder.parse_object = parse_object
        decoder.scan_once = json.scanner.py_make_scanner(decoder)
        return decoder.decode(self.text)


class _ScenarioReader:
    def __init__(self, parsed: _LineJSON, shown: str):
        self.parsed = parsed
        self.shown = shown
        self.errors: list[str] = []

    def error(self, line: int | None, message: str) -> None:
        self.errors.append(f"{self.shown}:{line or 1}: {message}")

    def read(self, doc: Any) -> Scenario:
        for line, key in self.parsed.duplicates:
            self.error(line, f'the key "{key}" appears twice in the same object')
        if not isinstance(doc, dict):
            self.error(1, "a scenario must be a JSON object with name, process, start, steps "
                          "and expect")
            raise ScenarioFileError(self.errors)
        top = self.parsed.line_of(doc, 1)
        name = doc.get("name")
        display = name if isinstance(name, str) and name.strip() else None
        for key in doc.keys() - _TOP_KEYS:
            self.error(top, f'unknown key "{key}" (a scenario has: {_listing(_TOP_KEYS)})')
        for key in _REQUIRED_KEYS:
            if key not in doc:
                self.error(top, f'missing key "{key}"')
        if "name" in doc and display is None:
            self.error(top, '"name" must be a non-empty string')
        process = doc.get("process")
        if "process" in doc and not (isinstance(process, str) and process.strip()):
            self.error(top, '"process" must be a process id (a non-empty string)')
        start = doc.get("start", {})
        if not isinstance(start, dict):
            self.error(top, '"start" must be an object: the data the case starts with')
            start = {}
        calendar = doc.get("calendar")
        if calendar is not None and (not isinstance(calendar, str)
                                     or calendar.strip().upper() not in REGIONS):
            self.error(top, f'"calendar" must be one of {", ".join(REGIONS)}, '
                            f"got {_show(calendar)}")
            calendar = None
        at = self._start_clock(doc, start, top)
        steps = self._steps(doc.get("steps", []), top)
        expect = self._expect(doc.get("expect", {}), top)
        if self.errors:
            raise ScenarioFileError(self.errors, display)
        return Scenario(display, process.strip(), at, calendar and calendar.strip().upper(),
                        start, steps, expect)

    def _start_clock(self, doc: dict, start: dict, top: int) -> datetime:
        if "clock" in doc:
            return self._instant(doc["clock"], top, '"clock"') or parse_instant(DEFAULT_CLOCK)
        if "received_at" in start:
            at = self._instant(start["received_at"], self.parsed.line_of(start, top),
                               '"start.received_at" (the clock starts there unless "clock" '
                               "is given)")
            return at or parse_instant(DEFAULT_CLOCK)
        return parse_instant(DEFAULT_CLOCK)

    def _instant(self, value: Any, line: int | None, what: str) -> datetime | None:
        try:
            if not isinstance(value, str):
                raise ValueError
            return parse_instant(value)
        except ValueError:
            self.error(line, f"{what} must be an ISO-8601 date and time with an offset, such "
                             f"as 2026-12-21T14:30:00+00:00; got {_show(value)}")
            return None

    def _steps(self, steps: Any, top: int) -> tuple[Step, ...]:
        if not isinstance(steps, list):
            self.error(top, '"steps" must be a list')
            return ()
        return tuple(s for n, raw in enumerate(steps, 1)
                     if (s := self._step(n, raw, self.parsed.line_of(raw, top))) is not None)

    def _step(self, n: int, raw: Any, line: int | None) -> Step | None:
        where = f"step {n}"
        if not isinstance(raw, dict):
            self.error(line, f"{where}: a step must be an object with one of "
                             f"{_listing(_STEP_KINDS)}")
            return None
        kinds = [k for k in _STEP_KINDS if k in raw]
        if len(kinds) != 1:
            found = f"it has {_listing(kinds)}" if kinds else (
                f"it has {_listing(raw.keys())}" if raw else "it is empty")
            self.error(line, f"{where}: unknown step kind: a step has exactly one of "
                             f"{_listing(_STEP_KINDS)}; {found}")
            return None
        kind = kinds[0]
        allowed = _TASK_STEP_KEYS if kind == "task" else {kind}
        extra = raw.keys() - allowed
        if extra:
            self.error(line, f"{where}: unknown key(s) {_listing(extra)} in a \"{kind}\" step "
                             f"(it takes {_listing(allowed)})")
            return None
        if kind == "task":
            task, data = raw["task"], raw.get("data", {})
            ok = True
            if not (isinstance(task, str) and task.strip()):
                self.error(line, f'{where}: "task" must be a BPMN task id')
                ok = False
            if not isinstance(data, dict):
                self.error(line, f'{where}: "data" must be an object of form fields')
                ok = False
            for key in ("expect_role", "expect_assignee"):
                value = raw.get(key, "")
                if not (isinstance(value, str) or (key == "expect_assignee" and value is None)):
                    self.error(line, f'{where}: "{key}" must be a string'
                                     f"{' or null' if key == 'expect_assignee' else ''}")
                    ok = False
            if not ok:
                return None
            return Step(n, line, kind, task=task.strip(), data=data,
                        expect_role=raw.get("expect_role", _UNSET),
                        expect_assignee=raw.get("expect_assignee", _UNSET))
        if kind == "advance":
            delta = self._delta(raw["advance"], where, self.parsed.line_of(raw["advance"], line))
            return Step(n, line, kind, delta=delta) if delta is not None else None
        instant = self._instant(raw["clock"], line, f'{where}: "clock"')
        return Step(n, line, kind, instant=instant) if instant is not None else None

    def _delta(self, value: Any, where: str, line: int | None) -> timedelta | None:
        units = _listing(_ADVANCE_UNITS)
        if not isinstance(value, dict) or not value:
            self.error(line, f'{where}: "advance" must be an object such as {{"days": 4, '
                             f'"hours": 1}} (units: {units})')
            return None
        bad = [k for k in value if k not in _ADVANCE_UNITS]
        if bad:
            self.error(line, f'{where}: unknown unit(s) {_listing(bad)} in "advance" '
                             f"(units: {units})")
            return None
        for unit, amount in value.items():
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                self.error(line, f'{where}: "advance.{unit}" must be a number, not negative; '
                                 f"got {_show(amount)}")
                return None
        try:
            return timedelta(**value)
        except OverflowError:
            self.error(line, f'{where}: "advance" is too large')
            return None

    def _expect(self, expect: Any, top: int) -> dict[str, Any]:
        if not isinstance(expect, dict):
            self.error(top, '"expect" must be an object')
            return {}
        line = self.parsed.line_of(expect, top)
        for key in expect.keys() - set(_EXPECT_KEYS):
            self.error(line, f'unknown key "{key}" in "expect" (it takes '
                             f"{_listing(_EXPECT_KEYS)})")
        path = expect.get("path", [])
        if not (isinstance(path, list) and all(isinstance(p, str) for p in path)):
            self.error(line, '"expect.path" must be a list of BPMN task ids')
        deadlines = expect.get("deadlines", {})
        if not isinstance(deadlines, dict):
            self.error(line, '"expect.deadlines" must be an object of deadline -> instant')
        else:
            at = self.parsed.line_of(deadlines, line)
            for key, value in deadlines.items():
                if value is not None:
                    self._instant(value, at, f'"expect.deadlines.{key}"')
        if not isinstance(expect.get("data", {}), dict):
            self.error(line, '"expect.data" must be an object')
        if "finished" in expect and not isinstance(expect["finished"], bool):
            self.error(line, '"expect.finished" must be true or false')
        return {k: v for k, v in expect.items() if k in _EXPECT_KEYS}


def _listing(names) -> str:
    """Quoted names; a set (no order of its own) is sorted."""
    if isinstance(names, (set, frozenset, type({}.keys()))):
        names = sorted(names, key=str)
    return ", ".join(f'"{n}"' for n in names)
