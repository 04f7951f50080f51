"""Element-level difference between two versions of a process's files.

What a process owner checks before deploying: which tasks, sequence flows, timers and
forms were added, removed or changed, and how (name, script, condition, timer
expression, form, lane, instructions, ...). Elements are matched by file and id; the
diagram layout (DI) is ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from lxml import etree

from engine.definition_files.model import BPMN_NS, SPIFF_NS

CATEGORIES = ("tasks", "flows", "timers", "gateways", "events", "forms", "scenarios", "files")
_TIMER_KINDS = ("timeDate", "timeDuration", "timeCycle")
_MAX_VALUE = 300


@dataclass(frozen=True)
class Change:
    category: str  # one of CATEGORIES
    change: str  # "added", "removed" or "changed"
    file: str
    element_id: str | None
    name: str
    details: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {"category": self.category, "change": self.change, "file": self.file,
                "element_id": self.element_id, "name": self.name, "details": list(self.details)}


def diff_files(old: Mapping[str, str], new: Mapping[str, str]) -> list[Change]:
    """The changes from ``old`` to ``new`` (file name -> text), in file and element order."""
    changes: list[Change] = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if name.lower().endswith(".bpmn"):
            changes += _diff_bpmn(name, before, after)
        elif name.startswith("forms/"):
            changes.append(_file_change("forms", name, before, after))
        elif name.startswith("tests/"):
            changes.append(_file_change("scenarios", name, before, after))
        else:
            changes.append(_file_change("files", name, before, after))
    return changes


def _file_change(category: str, name: str, before: str | None, after: str | None) -> Change:
    if before is None:
        return Change(category, "added", name, None, name)
    if after is None:
        return Change(category, "removed", name, None, name)
    return Change(category, "changed", name, None, name, tuple(_text_diff(before, after)))


def _diff_bpmn(file: str, before: str | None, after: str | None) -> list[Change]:
    old, new = _elements(before), _elements(after)
    if old is None or new is None:
        return [_file_change("files", file, before, after)]
    out = []
    for ident in list(old) + [i for i in new if i not in old]:
        a, b = old.get(ident), new.get(ident)
        category, name = (b or a)[0], (b or a)[1]
        if a is None:
            out.append(Change(category, "added", file, ident, name, _summary(b[2])))
        elif b is None:
            out.append(Change(category, "removed", file, ident, name, _summary(a[2])))
        elif a[2] != b[2] or a[0] != b[0]:
            details = []
            for key in sorted(set(a[2]) | set(b[2])):
                va, vb = a[2].get(key), b[2].get(key)
                if va == vb:
                    continue
                if va and vb and ("\n" in va or "\n" in vb):
                    details += [f"{key}: {line}" for line in _text_diff(va, vb)]
                else:
                    details.append(f"{key}: {_short(va)} → {_short(vb)}")
            out.append(Change(category, "changed", file, ident, name, tuple(details)))
    return out


def _summary(props: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{k}: {_short(v)}" for k, v in sorted(props.items()) if v)


def _short(value: str | None) -> str:
    if value is None or value == "":
        return "(none)"
    value = " ".join(value.split())
    return value if len(value) <= _MAX_VALUE else value[:_MAX_VALUE] + "…"


def _text_diff(before: str, after: str) -> list[str]:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in lines
            if line[:1] in "+-" and not line.startswith(("+++", "---"))][:40]


def _elements(text: str | None) -> dict[str, tuple[str, str, dict[str, str]]] | None:
    """id -> (category, name, properties) of the flow elements of a BPMN file."""
    if text is None:
        return {}
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(text.encode("utf-8"), parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    lanes = {}
    for lane in root.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.iterfind(f"{{{BPMN_NS}}}flowNodeRef"):
            lanes[(ref.text or "").strip()] = " ".join((lane.get("name") or "").split())
    out = {}
    for el in root.iter():
        if not isinstance(el.tag, str) or etree.QName(el).namespace != BPMN_NS:
            continue
        ident, kind = el.get("id"), etree.QName(el).localname
        category = _category(el, kind)
        if not ident or category is None:
            continue
        props = {"type": kind, "name": " ".join((el.get("name") or "").split())}
        if ident in lanes:
            props["lane"] = lanes[ident]
        if kind == "sequenceFlow":
            props["from"] = el.get("sourceRef") or ""
            props["to"] = el.get("targetRef") or ""
            cond = el.find(f"{{{BPMN_NS}}}conditionExpression")
            props["condition"] = (cond.text or "").strip() if cond is not None else ""
        for attr in ("attachedToRef", "cancelActivity", "calledElement", "default"):
            if el.get(attr) is not None:
                props[attr] = el.get(attr)
        script = el.find(f"{{{BPMN_NS}}}script")
        if script is not None:
            props["script"] = (script.text or "").strip()
        timer = el.find(f"{{{BPMN_NS}}}timerEventDefinition")
        if timer is not None:
            for child in timer:
                if isinstance(child.tag, str) and etree.QName(child).localname in _TIMER_KINDS:
                    props[etree.QName(child).localname] = (child.text or "").strip()
        for definition in el:
            if isinstance(definition.tag, str) and \
                    etree.QName(definition).localname.endswith("EventDefinition"):
                props.setdefault("event", etree.QName(definition).localname[:-15])
        ext = el.find(f"{{{BPMN_NS}}}extensionElements")
        if ext is not None:
            for child in ext:
                if not isinstance(child.tag, str) or etree.QName(child).namespace != SPIFF_NS:
                    continue
                local = etree.QName(child).localname
                if local == "properties":
                    for prop in child.iter(f"{{{SPIFF_NS}}}property"):
                        props[prop.get("name") or "?"] = prop.get("value") or ""
                elif local in ("instructionsForEndUser", "preScript", "postScript",
                               "calledDecisionId"):
                    props[local] = (child.text or "").strip()
        out[ident] = (category, props["name"] or ident, props)
    return out


def _category(el: etree._Element, kind: str) -> str | None:
    if kind == "sequenceFlow":
        return "flows"
    if el.find(f"{{{BPMN_NS}}}timerEventDefinition") is not None:
        return "timers"
    if kind.endswith("Task") or kind in ("task", "callActivity", "subProcess"):
        return "tasks"
    if kind.endswith("Gateway"):
        return "gateways"
    if kind.endswith("Event"):
        return "events"
    return None
