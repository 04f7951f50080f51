"""What loading definition files returns, and the shared helpers of its checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}

_SHORT_NS = {
    BPMN_NS: "bpmn:",
    "http://www.omg.org/spec/BPMN/20100524/DI": "bpmndi:",
    "http://www.omg.org/spec/DD/20100524/DC": "dc:",
    "http://www.omg.org/spec/DD/20100524/DI": "di:",
    SPIFF_NS: "spiffworkflow:",
    **{ns: "dmn:" for ns in DMN_SCHEMAS},
}


@dataclass(frozen=True)
class Problem:
    """One issue: ``file`` as given (relative to the loaded folder), or ``forms/<name>``."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line or 0}: {self.message}"

    def sort_key(self) -> tuple[str, int, str]:
        return (self.file, self.line or 0, self.message)


@dataclass(frozen=True)
class UserTaskInfo:
    """A user or manual task: title is its name (or id); role is role_for_lane(lane)."""

    bpmn_id: str
    title: str
    lane: str | None
    role: str | None
    form: str | None
    ui_form: str | None


@dataclass(frozen=True)
class Bundle:
    """One executable process, ready to store as a definition version.

    ``sources`` holds every file it needs by relative name (its BPMN file, those of the
    processes it calls, transitively, the DMN files of its decisions) and its forms as
    ``forms/<name>``; ``sha256`` is over those sorted (name, text) pairs.
    """

    process_id: str
    name: str
    sources: dict[str, str]
    sha256: str
    specs_json: str
    user_tasks: tuple[UserTaskInfo, ...]


@dataclass
class Doc:
    """One well-formed BPMN or DMN file."""

    name: str
    kind: str  # "bpmn" or "dmn"
    root: etree._Element
    text: str
    schema_ok: bool = True
    ids: dict[str, etree._Element] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for el in self.root.iter():
            if isinstance(el.tag, str) and el.get("id"):
                self.ids.setdefault(el.get("id"), el)

    def problem(self, el: etree._Element | None, message: str, offset: int = 0) -> Problem:
        line = el.sourceline + offset if el is not None and el.sourceline else None
        return Problem(self.name, line, message)


def local_name(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def describe(el: etree._Element) -> str:
    """'user task "Classify" (Activity_1)'; 'sequence flow "Flow_3"' when unnamed."""
    kind = re.sub(r"(?<!^)([A-Z])", r" \1", local_name(el)).lower()
    return f"{kind} {label(el)}"


def label(el: etree._Element) -> str:
    name = " ".join((el.get("name") or "").split())
    ident = el.get("id") or "?"
    return f'"{name}" ({ident})' if name and name != ident else f'"{ident}"'


def shorten_namespaces(text: str) -> str:
    for uri, prefix in _SHORT_NS.items():
        text = text.replace("{" + uri + "}", prefix)
    return text
