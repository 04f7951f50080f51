"""The sandbox for scripts, conditions and timer expressions from BPMN files.

Unit tests of ``engine.sandbox`` and ``engine.script_helpers``, then the same escapes
through real SpiffWorkflow workflows run with ``engine.script_engine``. The BPMN
fixtures in tests/fixtures/sandbox are templates: a placeholder is replaced by the
script, condition or timer expression under test.
"""

from __future__ import annotations

import copy
import signal
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from engine import clock, sandbox, spiff
from engine.calendar import BusinessCalendar
from engine.clock import ManualClock
from engine.sandbox import ScriptError, ScriptTimeout, evaluate, execute, syntax_errors
from engine.script_engine import make_script_engine
from engine.script_helpers import HELPER_NAMES, script_helpers

FIXTURES = Path(__file__).parent / "fixtures" / "sandbox"
RECEIVED = "2026-12-21T14:30:00+00:00"  # a Monday
HAS_PROC_MEMORY = Path("/proc/self/statm").exists()


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(datetime(2026, 12, 21, 14, 30, tzinfo=UTC))


@pytest.fixture
def helpers(manual_clock):
    return script_helpers(BusinessCalendar(), manual_clock)


def _data() -> dict:
    return {
        "amount": 250,
        "items": [{"name": "kettle", "price": 30}, {"name": "toaster", "price": 45}],
        "customer": {"name": "Ada", "vip": True},
        "received_at": RECEIVED,
    }


# ---------------------------------------------------------------- known escapes

ESCAPES = [
    pytest.param("import os", "exec", "tried to import a module", id="import"),
    pytest.param("from os import system", "exec", "tried to import a module", id="from-import"),
    pytest.param("__import__('os')", "eval", '"__import__" is not allowed', id="__import__"),
    pytest.param("open('/etc/passwd')", "eval", "'open' is not available", id="open"),
    pytest.param(
        "().__class__.__base__.__subclasses__()", "eval", "is not allowed", id="subclasses"
    ),
    pytest.param("__builtins__", "eval", '"__builtins__" is not allowed', id="__builtins__"),
    pytest.param(
        "getattr(amount, '__class__')", "eval", "'getattr' is not available", id="getattr"
    ),
    pytest.param("[x for x in iter(int, 1)]", "eval", "'iter' is not available", id="iter"),
    pytest.param("exec('import os')", "exec", "exec() is not allowed", id="exec"),
    pytest.param("eval('1')", "eval", "eval() is not allowed", id="eval"),
    pytest.param("run = exec\nrun('x = 1')", "exec", "'exec' is not available", id="exec-alias"),
    pytest.param("compile('1', 'f', 'eval')", "eval", "'compile' is not available", id="compile"),
    pytest.param("globals()", "eval", "'globals' is not available", id="globals"),
    pytest.param("vars()", "eval", "'vars' is not available", id="vars"),
    pytest.param("locals()", "eval", "'locals' is not available", id="locals"),
    pytest.param("type(amount)", "eval", "'type' is not available", id="type"),
    pytest.param("customer.__dict__", "eval", '"__dict__" is not allowed', id="__dict__"),
    pytest.param(
        "(lambda: 0).__globals__", "eval", '"__globals__" is not allowed', id="globals-attr"
    ),
    pytest.param("(x for x in items).gi_frame", "eval", '"gi_frame" is not allowed', id="gi_frame"),
    pytest.param("int.mro()", "eval", '"mro" is not allowed', id="mro"),
    pytest.param("'{0.__class__}'.format(1)", "eval", '"format" is not allowed', id="str.format"),
    pytest.param("class A:\n    pass", "exec", "class definitions are not allowed", id="class"),
    pytest.param("try:\n    x = 1\nexcept:\n    pass", "exec", "bare 'except:'", id="bare-except"),
    pytest.param("BaseException", "eval", "'BaseException' is not available", id="BaseException"),
    pytest.param("setattr(customer, 'x', 1)", "eval", "'setattr' is not available", id="setattr"),
]


@pytest.mark.parametrize(("source", "mode", "message"), ESCAPES)
def test_known_escapes_fail_with_a_clear_error_and_no_side_effect(source, mode, message, helpers):
    context = _data()
    before = copy.deepcopy(context)
    run = execute if mode == "exec" else evaluate
    with pytest.raises(ScriptError) as caught:
        run(source, context, helpers)
    assert message in str(caught.value)
    assert context == before


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("import os", id="import"),
        pytest.param("x = __import__('os')", id="__import__"),
        pytest.param("x = ().__class__.__base__.__subclasses__()", id="subclasses"),
        pytest.param("class A:\n    pass", id="class"),
    ],
)
def test_security_violations_are_reported_at_compile_time(source):
    problems = syntax_errors(source, "exec")
    assert problems and problems[0][0] == 1
    assert all(isinstance(message, str) and message for _, message in problems)


def test_a_script_that_would_create_a_file_fails_and_the_file_does_not_exist(tmp_path, helpers):
    sentinel = tmp_path / "pwned"
    context = {"path": str(sentinel)}
    attempts = [
        "open(path, 'w').write('x')",
        "import pathlib\npathlib.Path(path).touch()",
        "import os\nos.system('touch ' + path)",
        "__import__('os').system('touch ' + path)",
        "c = [k for k in ().__class__.__base__.__subclasses__() if k.__name__ == 'Popen']\n"
        "c[0](['touch', path])",
        "f = (lambda: 0).__globals__['__builtins__']['open']\nf(path, 'w')",
    ]
    for script in attempts:
        with pytest.raises(ScriptError):
            execute(script, context, helpers)
        with pytest.raises(ScriptError):
            evaluate(script.splitlines()[-1], context, helpers)
    assert not sentinel.exists()
    assert context == {"path": str(sentinel)}


def test_a_script_that_sets_variables_then_raises_leaves_the_context_unchanged(helpers):
    context = _data()
    before = copy.deepcopy(context)
    script = (
        "amount = 0\n"
        "new_value = 'x'\n"
        "items.append({'name': 'extra', 'price': 1})\n"
        "customer['name'] = 'Mallory'\n"
        "del received_at\n"
        "raise ValueError('stop here')\n"
    )
    with pytest.raises(ScriptError) as caught:
        execute(script, context, helpers)
    assert str(caught.value) == "line 6: ValueError: stop here"
    assert caught.value.line == 6
    assert context == before


def test_an_expression_cannot_change_task_data(helpers):
    context = _data()
    before = copy.deepcopy(context)
    assert evaluate("items.append(1) or customer.update(vip=False) or True", context, helpers)
    assert context == before


def test_task_data_keys_cannot_replace_the_guard_hooks(helpers):
    # keys starting with "_" are never put in the script namespace
    context = {"_getattr_": None, "_getiter_": None, "__builtins__": {"open": open}, "x": "ab"}
    assert evaluate("x.upper() + ''.join(c for c in x)", context, helpers) == "ABab"
    with pytest.raises(ScriptError, match="'open' is not available"):
        evaluate("open('/etc/passwd')", context, helpers)


# ------------------------------------------------------------------ time limit


ENDLESS_SCRIPTS = [
    pytest.param("while True:\n    pass", id="while-true"),
    pytest.param(
        "while True:\n    try:\n        while True:\n            pass\n"
        "    except Exception:\n        pass",
        id="catching-exception",
    ),
    pytest.param(
        "def grow(n):\n    return grow(n + 1) + grow(n + 1) if n < 400 else 0\nx = grow(0)",
        id="exponential-recursion",
    ),
    pytest.param(
        "f = lambda n: 0 if n > 60 else f(n + 1) + f(n + 1)\nx = f(0)", id="lambda-recursion"
    ),
    pytest.param(
        "x = sum(1 for a in range(100000) for b in range(100000))", id="nested-comprehension"
    ),
    pytest.param(
        "def forever():\n    while True:\n        yield 1\nx = sum(forever())", id="generator"
    ),
    pytest.param(
        "x = 0\nfor a in range(100000):\n    for b in range(100000):\n        x += 1",
        id="nested-for",
    ),
]


def _in_thread(function, *args, **kwargs) -> BaseException | None:
    outcome: list[BaseException | None] = []

    def worker():
        try:
            function(*args, **kwargs)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the script was not stopped"
    return outcome[0]


@pytest.mark.parametrize("script", ENDLESS_SCRIPTS)
def test_endless_scripts_are_stopped_by_the_time_limit(script, helpers):
    context = _data()
    before = copy.deepcopy(context)
    started = time.monotonic()
    with pytest.raises(ScriptTimeout) as caught:
        execute(script, context, helpers, time_limit=0.2)
    elapsed = time.monotonic() - started
    assert "script ran longer than 0.2 s and was stopped" in str(caught.value)
    assert 0.2 <= elapsed < 1.5
    assert context == before


@pytest.mark.parametrize("script", ENDLESS_SCRIPTS)
def test_endless_scripts_are_stopped_outside_the_main_thread(script, helpers):
    """No SIGALRM off the main thread: the ticks woven into the code must stop it."""
    context = _data()
    before = copy.deepcopy(context)
    error = _in_thread(execute, script, context, helpers, time_limit=0.2)
    assert isinstance(error, ScriptTimeout)
    assert context == before


def test_an_endless_condition_is_stopped_by_the_time_limit(helpers):
    with pytest.raises(ScriptTimeout, match="expression ran longer than 0.2 s"):
        evaluate("[n for n in range(100000) for m in range(100000)]", {}, helpers, time_limit=0.2)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM")
def test_the_alarm_backstop_stops_code_that_never_ticks_and_restores_the_previous_handler():
    def previous_handler(signum, frame):  # pragma: no cover - must not be called
        raise AssertionError("the previous handler must not fire")

    old = signal.signal(signal.SIGALRM, previous_handler)
    try:
        started = time.monotonic()
        with pytest.raises(ScriptTimeout, match="template ran longer than 0.1 s"):
            with sandbox.limits(0.1, noun="template"):
                while True:  # plain Python: no ticks, only the alarm can stop it
                    pass
        assert time.monotonic() - started < 2
        assert signal.getsignal(signal.SIGALRM) is previous_handler
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM")
def test_a_timer_armed_by_someone_else_is_left_alone(helpers):
    fired = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        with pytest.raises(ScriptTimeout):
            execute("while True:\n    pass", {}, helpers, time_limit=0.1)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert fired == []


def test_the_default_time_limit_is_one_second():
    assert sandbox.DEFAULT_TIME_LIMIT == 1.0
    with pytest.raises(ValueError):
        evaluate("1", {}, {}, time_limit=0)


# ------------------------------------------------------------------ size guards


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("'a' * 10**8", "at most 1000000"),
        ("[0] * 10**8", "at most 1000000"),
        ("2 ** 10**8", "too large"),
        ("pow(2, 10**8)", "too large"),
        ("1 << 10**8", "too large"),
        ("range(10**9)", "range() is limited to 100000"),
        ("'%999999d' % 1", "format width 999999 is too large"),
        ("'%*d' % (10**8, 1)", "'*' widths"),
        ("f'{1:>99999}'", "format width 99999 is too large"),
        ("'x'.ljust(10**8)", "at most 1000000"),
        ("'x'.center(10**8)", "at most 1000000"),
        ("('x' * 1000).replace('', 'y' * 1000)", "at most 1000000"),
        ("' '.join(['a' * 1000000] * 3)", "at most 1000000"),
        ("sum([[0] * 1000] * 10000, [])", "at most 1000000"),
    ],
)
def test_huge_allocations_are_refused(source, message, helpers):
    started = time.monotonic()
    with pytest.raises(ScriptError) as caught:
        evaluate(source, {}, helpers)
    assert message in str(caught.value)
    assert time.monotonic() - started < 0.5


def test_augmented_assignment_is_size_guarded_too(helpers):
    with pytest.raises(ScriptError, match="at most 1000000"):
        execute("s = 'ab'\nwhile True:\n    s += s", {}, helpers)


@pytest.mark.skipif(not HAS_PROC_MEMORY, reason="memory is measured from /proc/self/statm")
def test_a_script_whose_memory_keeps_growing_is_stopped(helpers, monkeypatch):
    monkeypatch.setattr(sandbox, "MEMORY_LIMIT_BYTES", 32 * 1024 * 1024)
    monkeypatch.setattr(sandbox, "_MEMORY_CHECK_INTERVAL", 0.0)  # check on every tick
    with pytest.raises(ScriptError, match="used more than 32 MB of memory"):
        execute("grow = [0]\nwhile True:\n    grow.extend(grow)", {}, helpers, time_limit=5)


# ------------------------------------------------------------ legitimate scripts


def test_legitimate_scripts_work(helpers):
    context = _data()
    script = (
        "total = 0\n"
        "names = []\n"
        "for item in items:\n"
        "    total += item['price']\n"
        "    names.append(item['name'].upper())\n"
        "summary = {'count': len(items), 'total': total, 'names': names}\n"
        "summary['average'] = round(total / len(items), 2)\n"
        "expensive = [i['name'] for i in items if i['price'] > 40]\n"
        "by_name = {i['name']: i['price'] for i in items}\n"
        "first, second = items\n"
        "def label(value):\n"
        "    return f'{value:>8.2f} GBP'\n"
        "price_label = label(first['price'])\n"
        "pair = (1, 2)\n"
        "try:\n"
        "    int('not a number')\n"
        "except ValueError:\n"
        "    parse_failed = True\n"
        "print('debug output is harmless')\n"
        "n = 0\n"
        "while n < 10:\n"
        "    n += 1\n"
        "amount = amount * 2 + 2 ** 10 - 7 // 2 % 5\n"
        "due = add_business_days(received_at, 3)\n"
        "customer['tier'] = 'gold' if customer['vip'] else 'standard'\n"
    )
    execute(script, context, helpers)
    assert context["total"] == 75
    assert context["summary"] == {
        "count": 2,
        "total": 75,
        "names": ["KETTLE", "TOASTER"],
        "average": 37.5,
    }
    assert context["expensive"] == ["toaster"]
    assert context["by_name"] == {"kettle": 30, "toaster": 45}
    assert context["price_label"] == "   30.00 GBP"
    assert context["pair"] == [1, 2]  # tuples are stored as lists (JSON)
    assert context["parse_failed"] is True
    assert context["n"] == 10
    assert context["amount"] == 250 * 2 + 1024 - 3
    assert context["due"] == "2026-12-24T14:30:00+00:00"
    assert context["customer"] == {"name": "Ada", "vip": True, "tier": "gold"}
    assert "label" not in context  # functions are not task data


def test_conditions_read_task_data(helpers):
    context = _data()
    assert evaluate("amount > 100 and customer['vip']", context, helpers) is True
    assert evaluate("len([i for i in items if i['price'] > 40]) == 1", context, helpers)
    assert evaluate("customer.get('missing', 'none')", context, helpers) == "none"
    assert evaluate("is_business_day(received_at)", context, helpers) is True
    assert evaluate("'PT72H'", context, helpers) == "PT72H"


def test_compiled_code_is_cached_by_source_text(helpers):
    sandbox.clear_cache()
    for _ in range(50):
        evaluate("amount > 100", {"amount": 150}, helpers)
    info = sandbox._compile.cache_info()
    assert info.misses == 1
    assert info.hits == 49


def test_execute_keeps_only_json_like_values(helpers):
    context = {"keep": "me", "_internal": object(), "when": datetime(2026, 1, 1, tzinfo=UTC)}
    execute("f = lambda: 1\ng = (x for x in [1])\nfrom_tuple = (1, (2, 3))\n", context, helpers)
    assert context["from_tuple"] == [1, [2, 3]]
    assert "f" not in context and "g" not in context
    # untouched values that are not JSON (set by the host) are left alone
    assert context["when"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert "_internal" in context

    with pytest.raises(ScriptError, match="variable 'tags' holds a set"):
        execute("tags = {'a', 'b'}", context, helpers)
    with pytest.raises(ScriptError, match="dict with the key 1"):
        execute("counts = {1: 'one'}", context, helpers)
    assert "tags" not in context and "counts" not in context


def test_execute_removes_deleted_variables(helpers):
    context = {"draft": "x", "keep": 1}
    execute("del draft", context, helpers)
    assert context == {"keep": 1}


# --------------------------------------------------------------- error messages


def test_error_messages_are_clear_and_carry_the_line(helpers):
    with pytest.raises(ScriptError) as caught:
        execute("x = 1\ny = z + 1", {}, helpers)
    assert str(caught.value) == "line 2: name 'z' is not defined"
    with pytest.raises(ScriptError) as caught:
        evaluate("customer['missing']", _data(), helpers)
    assert str(caught.value) == "key 'missing' is missing (KeyError)"
    with pytest.raises(ScriptError) as caught:
        evaluate("amount / 0", _data(), helpers)
    assert str(caught.value) == "ZeroDivisionError: division by zero"


def test_indented_text_is_accepted_and_lines_refer_to_the_original_text(helpers):
    assert evaluate("\n      amount > 1\n    ", {"amount": 2}, helpers) is True
    context: dict = {}
    execute("\n    x = 1\n    y = x + 1\n  ", context, helpers)
    assert context == {"x": 1, "y": 2}
    problems = syntax_errors("\n\n   (amount >\n  ", "eval")
    assert problems == [(3, "syntax error: '(' was never closed")]
    with pytest.raises(ScriptError) as caught:
        execute("\n  x = 1\n  y = missing", {}, helpers)
    assert caught.value.line == 3


def test_syntax_errors_lists_problems_with_their_line():
    assert syntax_errors("x = amount + 1\ny = [i for i in items]", "exec") == []
    assert syntax_errors("amount > 100 and customer['vip']", "eval") == []
    assert syntax_errors("x = (", "exec") == [(1, "syntax error: '(' was never closed")]
    problems = syntax_errors("x = 1\nimport os\ny = x.__dict__", "exec")
    assert [line for line, _ in problems] == [2, 3]
    assert "import a module" in problems[0][1]
    assert "__dict__" in problems[1][1]
    # a statement is not an expression
    assert syntax_errors("x = 1", "eval")[0][1].startswith("syntax error")
    with pytest.raises(ValueError):
        syntax_errors("1", "single")  # type: ignore[arg-type]


# --------------------------------------------------------------------- helpers


def test_helper_names_are_reserved(helpers):
    with pytest.raises(ScriptError, match="task data field 'now' has the name of a script helper"):
        evaluate("now()", {"now": "a form field"}, helpers)
    with pytest.raises(ScriptError, match="task data field 'add_days'"):
        execute("x = 1", {"add_days": 3}, helpers)
    context = {"a": 1}
    with pytest.raises(ScriptError, match="assigned to 'now'"):
        execute("now = 'shadowed'", context, helpers)
    assert context == {"a": 1}
    assert evaluate("now()", context, helpers) == "2026-12-21T14:30:00+00:00"


def test_script_helpers_return_utc_iso_strings(helpers, manual_clock):
    assert set(helpers) == set(HELPER_NAMES)
    assert helpers["now"]() == "2026-12-21T14:30:00+00:00"
    manual_clock.advance(hours=1)
    assert helpers["now"]() == "2026-12-21T15:30:00+00:00"
    assert helpers["add_business_days"](RECEIVED, 3) == "2026-12-24T14:30:00+00:00"
    # 25 Dec, the weekend and 28 Dec (Boxing Day, observed) are skipped
    assert helpers["add_business_days"]("2026-12-23T10:00:00+00:00", 3) == (
        "2026-12-30T10:00:00+00:00"
    )
    when = datetime(2026, 12, 21, 14, 30, tzinfo=UTC)
    assert helpers["add_business_days"](when, 1) == "2026-12-22T14:30:00+00:00"
    assert helpers["add_hours"](RECEIVED, 72) == "2026-12-24T14:30:00+00:00"
    assert helpers["add_days"](RECEIVED, 30) == "2027-01-20T14:30:00+00:00"
    assert helpers["add_months"]("2027-01-31T12:00:00+00:00", 1) == "2027-02-28T12:00:00+00:00"
    assert helpers["is_business_day"]("2026-12-25") is False
    assert helpers["is_business_day"](date(2026, 12, 24)) is True
    assert helpers["is_business_day"]("2026-12-26T10:00:00+00:00") is False
    assert helpers["parse_instant"]("2026-06-01T10:00:00+01:00") == "2026-06-01T09:00:00+00:00"


def test_script_helpers_reject_bad_arguments_clearly(helpers):
    with pytest.raises(ScriptError, match="has no time zone"):
        helpers["add_business_days"]("2026-12-21T14:30:00", 3)
    with pytest.raises(ScriptError, match="needs a date and time"):
        helpers["add_days"](12, 3)
    with pytest.raises(ScriptError, match="whole number of business days"):
        helpers["add_business_days"](RECEIVED, "3")
    with pytest.raises(ScriptError, match="cannot be negative"):
        helpers["add_business_days"](RECEIVED, -1)
    with pytest.raises(ScriptError, match="not an ISO-8601"):
        evaluate("add_hours('next tuesday', 2)", {}, helpers)


# ------------------------------------------------------ through SpiffWorkflow


def _spec(fixture: str, process_id: str, **replacements: str):
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    for placeholder, value in replacements.items():
        assert placeholder in text
        text = text.replace(placeholder, escape(value))
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_str(text.encode("utf-8"))
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


def _workflow(specs, helpers, data: dict | None = None, time_limit: float = 1.0) -> BpmnWorkflow:
    spec, subprocess_specs = specs
    workflow = BpmnWorkflow(
        spec, subprocess_specs, script_engine=make_script_engine(helpers, time_limit=time_limit)
    )
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(**(data or {}))
    return workflow


def _assert_still_serializable(workflow: BpmnWorkflow, specs) -> None:
    state = spiff.dumps_state(workflow)
    restored = spiff.loads_state(state, *specs)
    assert len(restored.tasks) == len(workflow.tasks)


WORKFLOW_ESCAPES = [
    pytest.param("import os\nos.system('id')", "tried to import a module", id="import"),
    pytest.param("x = __import__('os')", '"__import__" is not allowed', id="__import__"),
    pytest.param("x = open('/etc/passwd').read()", "'open' is not available", id="open"),
    pytest.param("x = ().__class__.__base__.__subclasses__()", "is not allowed", id="subclasses"),
    pytest.param("x = __builtins__", '"__builtins__" is not allowed', id="__builtins__"),
    pytest.param("x = getattr(1, '__class__')", "'getattr' is not available", id="getattr"),
    pytest.param("x = [y for y in iter(int, 1)]", "'iter' is not available", id="iter"),
    pytest.param("exec('x = 1')", "exec() is not allowed", id="exec"),
    pytest.param("x = globals()", "'globals' is not available", id="globals"),
    pytest.param("x = vars()", "'vars' is not available", id="vars"),
    pytest.param("x = compile('1', 'f', 'eval')", "'compile' is not available", id="compile"),
]


@pytest.mark.parametrize(("script", "message"), WORKFLOW_ESCAPES)
def test_escapes_fail_in_a_script_task_of_a_real_workflow(script, message, helpers):
    specs = _spec("script_task.bpmn", "sandbox_script", SCRIPT_PLACEHOLDER=script)
    workflow = _workflow(specs, helpers, {"amount": 1})
    with pytest.raises(WorkflowTaskException) as caught:
        workflow.do_engine_steps()
    error = caught.value
    assert error.task.task_spec.name == "compute"
    assert str(error).startswith('Script Task "Compute deadline": ')
    assert not str(error).endswith(". ")  # no empty SpiffWorkflow notes
    assert message in str(error)
    assert isinstance(error.__cause__, ScriptError)
    assert [t.task_spec.name for t in workflow.get_tasks(state=TaskState.ERROR)] == ["compute"]
    assert not workflow.is_completed()
    _assert_still_serializable(workflow, specs)


def test_an_endless_script_task_is_stopped_in_a_real_workflow(helpers):
    specs = _spec("script_task.bpmn", "sandbox_script", SCRIPT_PLACEHOLDER="while True:\n    pass")
    workflow = _workflow(specs, helpers, time_limit=0.2)
    with pytest.raises(WorkflowTaskException) as caught:
        workflow.do_engine_steps()
    assert "script ran longer than 0.2 s and was stopped" in str(caught.value)
    assert caught.value.task.task_spec.name == "compute"
    _assert_still_serializable(workflow, specs)


def test_a_failing_script_task_changes_no_task_data(helpers):
    script = "amount = 0\nnote = 'half done'\nraise ValueError('boom')"
    specs = _spec("script_task.bpmn", "sandbox_script", SCRIPT_PLACEHOLDER=script)
    workflow = _workflow(specs, helpers, {"amount": 5})
    with pytest.raises(WorkflowTaskException, match="line 3: ValueError: boom"):
        workflow.do_engine_steps()
    (failed,) = workflow.get_tasks(state=TaskState.ERROR)
    assert failed.data == {"amount": 5}


def test_a_legitimate_script_task_computes_a_deadline_with_the_helpers(helpers):
    script = "due = add_business_days(received_at, 3)\nlate = now() > due"
    specs = _spec("script_task.bpmn", "sandbox_script", SCRIPT_PLACEHOLDER=script)
    workflow = _workflow(specs, helpers, {"received_at": RECEIVED})
    workflow.do_engine_steps()
    assert workflow.is_completed()
    assert workflow.data["due"] == "2026-12-24T14:30:00+00:00"
    assert workflow.data["late"] is False
    _assert_still_serializable(workflow, specs)


def test_scripts_and_conditions_indented_inside_the_xml_work(helpers):
    script = "\n        due = add_business_days(received_at, 3)\n        late = False\n      "
    specs = _spec("script_task.bpmn", "sandbox_script", SCRIPT_PLACEHOLDER=script)
    workflow = _workflow(specs, helpers, {"received_at": RECEIVED})
    workflow.do_engine_steps()
    assert workflow.data["due"] == "2026-12-24T14:30:00+00:00"

    condition = "\n        amount > 100\n      "
    specs = _spec("gateway.bpmn", "sandbox_gateway", CONDITION_PLACEHOLDER=condition)
    workflow = _workflow(specs, helpers, {"amount": 500})
    workflow.do_engine_steps()
    finished = {t.task_spec.name for t in workflow.get_tasks(state=TaskState.COMPLETED)}
    assert "end_serious" in finished


def test_a_form_field_named_like_a_helper_fails_clearly_in_a_workflow(helpers):
    specs = _spec("script_task.bpmn", "sandbox_script", SCRIPT_PLACEHOLDER="x = now()")
    workflow = _workflow(specs, helpers, {"now": "typed by a user"})
    with pytest.raises(WorkflowTaskException, match="'now' has the name of a script helper"):
        workflow.do_engine_steps()


def test_a_misspelt_name_gets_a_suggestion(helpers):
    specs = _spec("script_task.bpmn", "sandbox_script", SCRIPT_PLACEHOLDER="x = amout + 1")
    workflow = _workflow(specs, helpers, {"amount": 1})
    with pytest.raises(WorkflowTaskException) as caught:
        workflow.do_engine_steps()
    assert "name 'amout' is not defined" in str(caught.value)
    assert "Did you mean 'amount'?" in str(caught.value)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("().__class__.__base__.__subclasses__()", "is not allowed"),
        ("open('/etc/passwd').read() != ''", "'open' is not available"),
        ("__import__('os').system('id') == 0", '"__import__" is not allowed'),
        ("[x for x in iter(int, 1)]", "'iter' is not available"),
    ],
)
def test_a_malicious_gateway_condition_fails_in_a_real_workflow(condition, message, helpers):
    specs = _spec("gateway.bpmn", "sandbox_gateway", CONDITION_PLACEHOLDER=condition)
    workflow = _workflow(specs, helpers, {"amount": 500})
    with pytest.raises(WorkflowTaskException) as caught:
        workflow.do_engine_steps()
    assert caught.value.task.task_spec.name == "route"
    assert str(caught.value).startswith('Exclusive Gateway "Serious complaint?": ')
    assert message in str(caught.value)
    _assert_still_serializable(workflow, specs)


def test_an_endless_gateway_condition_is_stopped(helpers):
    condition = "sum(1 for a in range(100000) for b in range(100000)) > 0"
    specs = _spec("gateway.bpmn", "sandbox_gateway", CONDITION_PLACEHOLDER=condition)
    workflow = _workflow(specs, helpers, time_limit=0.2)
    with pytest.raises(WorkflowTaskException, match="expression ran longer than 0.2 s"):
        workflow.do_engine_steps()


@pytest.mark.parametrize(("amount", "end"), [(500, "end_serious"), (50, "end_normal")])
def test_gateway_conditions_read_task_data(amount, end, helpers):
    specs = _spec("gateway.bpmn", "sandbox_gateway", CONDITION_PLACEHOLDER="amount > 100")
    workflow = _workflow(specs, helpers, {"amount": amount})
    workflow.do_engine_steps()
    assert workflow.is_completed()
    finished = {t.task_spec.name for t in workflow.get_tasks(state=TaskState.COMPLETED)}
    assert end in finished
    assert ({"end_serious", "end_normal"} - {end}).isdisjoint(finished)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("open('/etc/passwd').read()", "'open' is not available"),
        ("().__class__.__base__.__subclasses__()", "is not allowed"),
        ("__import__('os').system('id')", '"__import__" is not allowed'),
    ],
)
def test_a_malicious_timer_expression_fails_in_a_real_workflow(expression, message, helpers):
    specs = _spec("timer.bpmn", "sandbox_timer", TIMER_PLACEHOLDER=expression)
    workflow = _workflow(specs, helpers, {"received_at": RECEIVED})
    with pytest.raises(WorkflowTaskException) as caught:
        workflow.do_engine_steps()
    assert caught.value.task.task_spec.name == "wait_acknowledgement"
    assert '"Acknowledgement due": ' in str(caught.value)
    assert message in str(caught.value)
    _assert_still_serializable(workflow, specs)


def test_a_timer_expression_with_a_helper_waits_until_the_deadline(helpers, manual_clock):
    specs = _spec(
        "timer.bpmn", "sandbox_timer", TIMER_PLACEHOLDER="add_business_days(received_at, 3)"
    )
    with clock.using(manual_clock):
        workflow = _workflow(specs, helpers, {"received_at": RECEIVED})
        workflow.do_engine_steps()
        events = [e for e in workflow.waiting_events() if "Time" in e.event_type]
        assert [e.value for e in events] == ["2026-12-24T14:30:00+00:00"]
        assert not workflow.is_completed()

        manual_clock.advance(timedelta(days=3))  # exactly at the deadline: not yet passed
        workflow.refresh_timers()
        workflow.do_engine_steps()
        assert not workflow.is_completed()

        manual_clock.advance(timedelta(seconds=1))
        workflow.refresh_timers()
        workflow.do_engine_steps()
        assert workflow.is_completed()


def test_a_malicious_pre_script_fails_in_a_real_workflow(helpers):
    specs = _spec(
        "pre_post_script.bpmn",
        "sandbox_pre_post",
        PRESCRIPT_PLACEHOLDER="x = __import__('os')",
        POSTSCRIPT_PLACEHOLDER="y = 1",
    )
    workflow = _workflow(specs, helpers)
    with pytest.raises(WorkflowTaskException) as caught:
        workflow.do_engine_steps()
    assert caught.value.task.task_spec.name == "acknowledge"
    assert '"__import__" is not allowed' in str(caught.value)
    assert "Pre-Script" in str(caught.value)
    _assert_still_serializable(workflow, specs)


def test_a_malicious_post_script_fails_and_a_legitimate_pre_script_runs(helpers):
    specs = _spec(
        "pre_post_script.bpmn",
        "sandbox_pre_post",
        PRESCRIPT_PLACEHOLDER="due = add_days(received_at, 1)",
        POSTSCRIPT_PLACEHOLDER="import subprocess",
    )
    workflow = _workflow(specs, helpers, {"received_at": RECEIVED})
    workflow.do_engine_steps()
    (task,) = workflow.get_tasks(state=TaskState.READY, manual=True)
    assert task.data["due"] == "2026-12-22T14:30:00+00:00"
    with pytest.raises(WorkflowTaskException) as caught:
        task.run()
    assert "tried to import a module" in str(caught.value)
    assert "Post-Script" in str(caught.value)
    _assert_still_serializable(workflow, specs)


def test_the_script_engine_is_a_sandboxed_python_script_engine(helpers):
    engine = make_script_engine(helpers)
    assert isinstance(engine, PythonScriptEngine)
    assert isinstance(engine.environment, BasePythonScriptEngineEnvironment)
    assert engine.environment.globals == {}  # helpers never enter task data
    engine.validate("x = amount + 1")
    with pytest.raises(SyntaxError):
        engine.validate("x = (")
    with pytest.raises(ScriptError, match="import a module"):
        engine.validate("import os")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")
def test_no_alarm_is_left_armed_after_a_workflow_error(helpers):
    specs = _spec("script_task.bpmn", "sandbox_script", SCRIPT_PLACEHOLDER="x = 1 / 0")
    workflow = _workflow(specs, helpers)
    with pytest.raises(WorkflowTaskException, match="ZeroDivisionError"):
        workflow.do_engine_steps()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.default_int_handler, None)
