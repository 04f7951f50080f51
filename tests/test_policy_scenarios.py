"""The policy's own scenarios (processes/tests/*.json) against the diagrams in processes/.

One test per scenario file, so a failure names the scenario; what
``complaints definitions test`` prints is the failure message.
"""

from __future__ import annotations

import functools

import pytest

from engine.definition_files import load_directory
from engine.scenarios import run_file, scenario_files
from engine.settings import PROJECT_ROOT

PROCESSES = PROJECT_ROOT / "processes"
FILES = scenario_files(PROCESSES)


@functools.cache
def _bundles() -> dict:
    bundles, problems = load_directory(PROCESSES)
    if problems:
        pytest.fail("processes/ does not deploy:\n" + "\n".join(str(p) for p in problems),
                    pytrace=False)
    return {bundle.process_id: bundle for bundle in bundles}


@pytest.mark.skipif(not FILES, reason="no scenario files in processes/tests/ yet")
@pytest.mark.parametrize("path", FILES or [None], ids=lambda p: p.name if p else "none")
def test_policy_scenario(path):
    result = run_file(path, _bundles(), PROCESSES)
    if not result.passed:
        pytest.fail("\n".join(result.lines()), pytrace=False)
