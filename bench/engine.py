"""Benchmark: the durable engine against bare SpiffWorkflow in memory.

Runs the same complaint-like process N times from start to end: bench/processes,
shaped like the policy's model: a main process that calls one diagram per stage
(logging, acknowledgement, classification, investigation, resolution, closure),
7 user tasks on the major path, an exclusive gateway, deadlines computed in business
days by scripts and boundary timers on them:
  (a) bare SpiffWorkflow in memory (same sandboxed script engine);
  (b) through the durable engine on a SQLite file, one committed transaction per
      user task (start, then every completion), each answering with the case's next
      open tasks.
Prints instances per second for each and the ratio b/a (target: >= 0.5).

For the record it also prints (c): (a)'s loop with the engine's workflow classes
(engine/fast_workflow.py: SpiffWorkflow with faster task-tree scans), still in memory.
b/c is what persistence alone costs; c/a what the engine's scans gain.

    .venv/bin/python bench/engine.py [-n 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.task import TaskState  # noqa: E402
from sqlalchemy import create_engine, select  # noqa: E402

from engine import clock, instances, migrate, runtime  # noqa: E402
from engine.audit import Actor  # noqa: E402
from engine.calendar import calendar_from_settings, iso  # noqa: E402
from engine.db import get_engine, unit_of_work  # noqa: E402
from engine.deploy import deploy_directory  # noqa: E402
from engine.fast_workflow import EngineWorkflow  # noqa: E402
from engine.models import HumanTask  # noqa: E402
from engine.roles import ROLES  # noqa: E402
from engine.spiff import new_parser  # noqa: E402

PROCESS_DIR = ROOT / "bench" / "processes"
PROCESS_ID = "complaint_bench"
# Received now, so that the 10-business-day boundary timer stays in the future.
START_DATA = {"received_at": iso(clock.now()), "owner": "bench"}
FORM_DATA = {"log": {"summary": "Late delivery"}, "classify": {"classification": "major"}}
ACTOR = Actor("bench", frozenset(ROLES))


def run_in_memory(n: int, workflow_class=BpmnWorkflow) -> float:
    parser = new_parser()
    parser.add_bpmn_files([str(p) for p in sorted(PROCESS_DIR.glob("*.bpmn"))])
    spec = parser.get_spec(PROCESS_ID)
    subprocess_specs = parser.get_subprocess_specs(PROCESS_ID)
    calendar = calendar_from_settings()
    started = time.perf_counter()
    for _ in range(n):
        workflow = workflow_class(spec, subprocess_specs,
                                  script_engine=runtime.script_engine_for(calendar))
        for task in workflow.get_tasks(state=TaskState.READY):
            task.set_data(**START_DATA)
        workflow.do_engine_steps()
        while not workflow.is_completed():
            ready = runtime.ready_human_tasks(workflow)  # the scan the engine uses too
            task = ready[0]
            task.set_data(**FORM_DATA.get(task.task_spec.name, {}))
            task.run()
            workflow.refresh_timers()
            workflow.do_engine_steps()
    return time.perf_counter() - started


def run_durable(n: int, db_path: Path) -> float:
    url = f"sqlite:///{db_path}"
    migrate.upgrade(create_engine(url))
    engine = get_engine(url)
    with unit_of_work(engine) as uow:
        result = deploy_directory(uow.session, PROCESS_DIR, ACTOR)
        assert result.ok, result.problems
    started = time.perf_counter()
    for _ in range(n):
        # Each step answers with the case's next open tasks, as the API does.
        with unit_of_work(engine) as uow:
            ready = instances.start_instance(uow, PROCESS_ID, START_DATA, ACTOR).ready_tasks
        while ready:
            task_id, bpmn_id = ready[0]
            with unit_of_work(engine) as uow:
                ready = instances.complete_task(
                    uow, task_id, FORM_DATA.get(bpmn_id, {}), ACTOR).ready_tasks
    elapsed = time.perf_counter() - started
    with unit_of_work(engine, write=False) as uow:
        open_tasks = uow.session.scalar(
            select(HumanTask.id).where(HumanTask.state == "ready").limit(1))
        assert open_tasks is None, "an instance did not finish"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="instances per run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating runs of (a) and (b); the median of each is reported")
    args = parser.parse_args()
    memory, durable, engine_classes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        run_in_memory(30)  # warm up imports, compiled scripts and caches
        run_in_memory(30, EngineWorkflow)
        run_durable(30, Path(tmp) / "warm.db")
        for i in range(args.rounds):
            memory.append(run_in_memory(args.n))
            durable.append(run_durable(args.n, Path(tmp) / f"bench{i}.db"))
            engine_classes.append(run_in_memory(args.n, EngineWorkflow))
    a = args.n / statistics.median(memory)
    b = args.n / statistics.median(durable)
    c = args.n / statistics.median(engine_classes)
    print(f"process: {PROCESS_ID} (bench/processes), {args.n} instances x {args.rounds} rounds, "
          "7 user tasks each (major path)")
    print(f"(a) bare SpiffWorkflow in memory: {a:8.1f} instances/s")
    print(f"(b) durable engine, SQLite file:  {b:8.1f} instances/s "
          f"({args.n * 8} commits per round)")
    print(f"ratio b/a: {b / a:.2f} (target >= 0.5)")
    print(f"(c) for the record, (a) with the engine's workflow classes: {c:8.1f} instances/s "
          f"(b/c {b / c:.2f}, c/a {c / a:.2f})")


if __name__ == "__main__":
    main()
