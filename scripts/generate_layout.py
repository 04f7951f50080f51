"""Write the BPMN diagram interchange (DI) of process files: a clean left-to-right layout.

Usage::

    .venv/bin/python scripts/generate_layout.py processes/*.bpmn          # rewrite the DI
    .venv/bin/python scripts/generate_layout.py --check processes/*.bpmn  # exit 1 if stale

The .bpmn files are the source of truth; this only (re)computes their
``bpmndi:BPMNDiagram`` from the process semantics, so that a diagram edited by hand (or
written without a modeller) opens cleanly in bpmn-js. Everything outside the DI is left
byte for byte as it was. After a modeller has laid a diagram out by hand, do not run this
on it again unless you want the automatic layout back.

The layout:

* one pool per participant, one horizontal band per lane, in the order of the laneSet;
* nodes in columns by the longest path from the start (loops and boundary events do not
  push nodes right), in rows within their lane: a node keeps the row of the node before
  it, a second branch of a gateway goes one row down, and the flow that leaves a
  boundary event goes to the row below its task;
* boundary events on the bottom edge of their task (top edge when their flow goes to a
  lane above); expanded sub-processes are laid out the same way inside their box;
* sequence flows as orthogonal lines: straight when source and target share a row, down
  or up out of a gateway's corner to another row, round the nodes in between when a flow
  skips columns, and under the row for a flow that goes back (a loop).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
NS = {"bpmn": BPMN, "bpmndi": BPMNDI, "dc": DC, "di": DI}

EVENT = (36, 36)
GATEWAY = (50, 50)
ACTIVITY = (100, 80)
H_GAP = 70  # between columns
V_GAP = 80  # between rows of a lane
LANE_PAD_TOP = 35
LANE_PAD_BOTTOM = 40
LANE_LEFT = 50  # from the lane's left edge to the first column
POOL_LABEL = 30  # the pool's name band
SUB_PAD = (30, 45, 30, 50)  # left, top, right, bottom inside an expanded sub-process
ORIGIN = (160, 80)

_EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent",
           "boundaryEvent"}
_GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway",
             "complexGateway"}
_ACTIVITIES = {"task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask",
               "receiveTask", "businessRuleTask", "callActivity", "subProcess",
               "transaction", "adHocSubProcess"}
_FLOW_NODES = _EVENTS | _GATEWAYS | _ACTIVITIES


def local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


@dataclass
class Box:
    x: float = 0
    y: float = 0
    w: float = 0
    h: float = 0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h


@dataclass
class Node:
    id: str
    kind: str
    name: str
    order: int
    lane: int = 0
    rank: int = 0
    row: int = 0
    box: Box = field(default_factory=Box)
    host: str | None = None  # boundary events
    body: Body | None = None  # expanded sub-processes


@dataclass
class Flow:
    id: str
    source: str
    target: str
    name: str
    points: list[tuple[float, float]] = field(default_factory=list)
    label: Box | None = None


@dataclass
class Body:
    """The flow nodes and sequence flows directly inside a process or sub-process."""

    nodes: dict[str, Node]
    flows: list[Flow]
    lane_count: int = 1
    lane_boxes: list[Box] = field(default_factory=list)
    size: tuple[float, float] = (0, 0)


def read_body(container, lane_of: dict[str, int]) -> Body:
    nodes: dict[str, Node] = {}
    flows: list[Flow] = []
    for order, el in enumerate(container):
        kind = local(el)
        if kind in _FLOW_NODES:
            node = Node(el.get("id"), kind, " ".join((el.get("name") or "").split()), order,
                        lane=lane_of.get(el.get("id"), 0))
            if kind == "boundaryEvent":
                node.host = el.get("attachedToRef")
            if kind in ("subProcess", "transaction", "adHocSubProcess"):
                node.body = read_body(el, {})
            nodes[node.id] = node
        elif kind == "sequenceFlow":
            flows.append(Flow(el.get("id"), el.get("sourceRef"), el.get("targetRef"),
                              " ".join((el.get("name") or "").split())))
    for node in nodes.values():  # a boundary event sits in its host's lane
        if node.host in nodes:
            node.lane = nodes[node.host].lane
    return Body(nodes, flows, lane_count=max([n.lane for n in nodes.values()] + [0]) + 1)


# -- ranks and rows -------------------------------------------------------------------------

def _size(node: Node) -> tuple[float, float]:
    if node.body is not None:
        return node.body.size
    if node.kind in _EVENTS:
        return EVENT
    if node.kind in _GATEWAYS:
        return GATEWAY
    return ACTIVITY


def _back_edges(body: Body) -> set[str]:
    """Flows that close a loop (found by a depth-first walk from the start nodes)."""
    nodes, succ = body.nodes, {}
    for f in body.flows:
        source = nodes[f.source].host if nodes[f.source].host in nodes else f.source
        succ.setdefault(source, []).append(f)
    has_incoming = {f.target for f in body.flows}
    roots = [n.id for n in sorted(nodes.values(), key=lambda n: n.order)
             if n.id not in has_incoming and n.host is None]
    roots += [n.id for n in sorted(nodes.values(), key=lambda n: n.order) if n.host is None]
    state: dict[str, int] = {}
    back: set[str] = set()
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(succ.get(root, [])))]
        state[root] = 1
        while stack:
            node_id, edges = stack[-1]
            edge = next(edges, None)
            if edge is None:
                state[node_id] = 2
                stack.pop()
                continue
            target = edge.target
            if state.get(target) == 1:
                back.add(edge.id)
            elif target not in state:
                state[target] = 1
                stack.append((target, iter(succ.get(target, []))))
    return back


def _rank(body: Body, back: set[str]) -> None:
    nodes = body.nodes
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for f in body.flows:
        if f.id in back:
            continue
        source = nodes[f.source]
        preds[f.target].append(source.host if source.host in nodes else f.source)
    ranks: dict[str, int] = {}

    def rank_of(node_id: str, seen: frozenset = frozenset()) -> int:
        if node_id in ranks:
            return ranks[node_id]
        if node_id in seen:  # a cycle the walk did not cut (unreachable part): stop here
            return 0
        value = max((rank_of(p, seen | {node_id}) + 1 for p in preds[node_id]), default=0)
        ranks[node_id] = value
        return value

    for node in nodes.values():
        if node.host is None:
            node.rank = rank_of(node.id)
    for node in nodes.values():
        if node.host in nodes:
            node.rank = nodes[node.host].rank


def _loop_bodies(body: Body, back: set[str]) -> set[str]:
    """Nodes on a loop: reachable from a loop's head and reaching the flow that goes back."""
    nodes = body.nodes

    def real(node_id: str) -> str:
        return nodes[node_id].host if nodes[node_id].host in nodes else node_id

    succ: dict[str, set[str]] = {}
    pred: dict[str, set[str]] = {}
    for f in body.flows:
        if f.id not in back:
            succ.setdefault(real(f.source), set()).add(f.target)
            pred.setdefault(f.target, set()).add(real(f.source))

    def reach(start: str, edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    loops: set[str] = set()
    for f in body.flows:
        if f.id in back:
            loops |= reach(f.target, succ) & reach(real(f.source), pred)
    return loops


def _rows(body: Body, back: set[str]) -> None:
    """Rows within lanes. At a column, the node that leads on (not into a loop) is placed
    first, so a loop's body and a gateway's second branch go below the main line."""
    nodes = body.nodes
    first_pred: dict[str, str] = {}
    for f in body.flows:
        if f.id not in back and f.target not in first_pred:
            first_pred[f.target] = f.source
    loops = _loop_bodies(body, back)
    flow_index = {}
    for i, f in enumerate(body.flows):
        flow_index.setdefault(f.target, i)
    taken: dict[tuple[int, int], set[int]] = {}
    placed: set[str] = set()
    for node in sorted((n for n in nodes.values() if n.host is None),
                       key=lambda n: (n.rank, n.id in loops, flow_index.get(n.id, -1),
                                      n.order)):
        preferred = 0
        pred = first_pred.get(node.id)
        if pred is not None:
            p = nodes[pred]
            if p.host in nodes:  # the flow of a boundary event: one row below its task
                host = nodes[p.host]
                preferred = host.row + 1 if host.lane == node.lane else 0
            elif p.id in placed and p.lane == node.lane:
                preferred = p.row
        row = preferred
        while row in taken.setdefault((node.lane, node.rank), set()):
            row += 1
        taken[(node.lane, node.rank)].add(row)
        node.row = row
        placed.add(node.id)


# -- coordinates ----------------------------------------------------------------------------

def layout(body: Body, with_lanes: bool) -> None:
    """Give every node of ``body`` a box relative to (0, 0); set ``body.size``."""
    for node in body.nodes.values():
        if node.body is not None:
            layout(node.body, with_lanes=False)
            w, h = node.body.size
            node.body.size = (w + SUB_PAD[0] + SUB_PAD[2], h + SUB_PAD[1] + SUB_PAD[3])
    back = _back_edges(body)
    _rank(body, back)
    _rows(body, back)
    placed = [n for n in body.nodes.values() if n.host is None]
    ranks = max([n.rank for n in placed] + [0]) + 1
    col_w = [0.0] * ranks
    for n in placed:
        col_w[n.rank] = max(col_w[n.rank], _size(n)[0])
    col_x, x = [], (LANE_LEFT if with_lanes else 0)
    for w in col_w:
        col_x.append(x)
        x += w + H_GAP
    width = x - H_GAP + (LANE_LEFT if with_lanes else 0)

    loops_in_lane = [0] * body.lane_count
    for f in body.flows:
        if f.id in back:
            loops_in_lane[body.nodes[f.target].lane] += 1
    lane_y, y = [], 0.0
    row_tops: dict[tuple[int, int], float] = {}
    row_h: dict[tuple[int, int], float] = {}
    for n in placed:
        key = (n.lane, n.row)
        row_h[key] = max(row_h.get(key, 0), _size(n)[1])
    for lane in range(body.lane_count):
        lane_y.append(y)
        rows = sorted(r for (la, r) in row_h if la == lane) or [0]
        top = y + (LANE_PAD_TOP if with_lanes else 0)
        for r in range(max(rows) + 1):
            row_tops[(lane, r)] = top
            top += row_h.get((lane, r), ACTIVITY[1]) + V_GAP
        bottom_pad = (LANE_PAD_BOTTOM + 12 * loops_in_lane[lane]) if with_lanes else (
            12 * loops_in_lane[lane])
        y = top - V_GAP + bottom_pad
    body.lane_boxes = [Box(0, lane_y[i], width, (lane_y[i + 1] if i + 1 < len(lane_y) else y)
                           - lane_y[i]) for i in range(body.lane_count)]
    body.size = (width, y)
    for n in placed:
        w, h = _size(n)
        key = (n.lane, n.row)
        cx = col_x[n.rank] + col_w[n.rank] / 2
        cy = row_tops[key] + row_h[key] / 2
        n.box = Box(cx - w / 2, cy - h / 2, w, h)
    _place_boundary_events(body)
    body.back = back  # type: ignore[attr-defined]


def _place_boundary_events(body: Body) -> None:
    nodes = body.nodes
    by_host: dict[str, list[Node]] = {}
    for n in sorted(nodes.values(), key=lambda n: n.order):
        if n.host in nodes:
            by_host.setdefault(n.host, []).append(n)
    for host_id, events in by_host.items():
        host = nodes[host_id].box
        for i, ev in enumerate(events):
            targets = [nodes[f.target] for f in body.flows if f.source == ev.id]
            up = bool(targets) and all(t.lane < ev.lane for t in targets)
            cx = host.right - 25 - 45 * i if host.w > 60 else host.cx
            cy = host.y if up else host.bottom
            ev.box = Box(cx - EVENT[0] / 2, cy - EVENT[1] / 2, *EVENT)
            ev.up = up  # type: ignore[attr-defined]


def shift(body: Body, dx: float, dy: float) -> None:
    """Move a laid-out body (and its sub-processes) to absolute coordinates."""
    for n in body.nodes.values():
        n.box.x += dx
        n.box.y += dy
    for lane in body.lane_boxes:
        lane.x += dx
        lane.y += dy
    for n in body.nodes.values():
        if n.body is not None:
            shift(n.body, n.box.x + SUB_PAD[0], n.box.y + SUB_PAD[1])


# -- sequence flows -------------------------------------------------------------------------

def route(body: Body) -> None:
    nodes, back = body.nodes, body.back  # type: ignore[attr-defined]
    loop_count: dict[int, int] = {}
    for f in body.flows:
        s, t = nodes[f.source], nodes[f.target]
        S, T = s.box, t.box
        if s.host in nodes:
            if getattr(s, "up", False):
                start = (S.cx, S.y)
            else:
                start = (S.cx, S.bottom)
            low, high = sorted((start[1], T.cy))
            in_the_way = [n for n in nodes.values() if n.host is None and n.id != s.host
                          and n.id != t.id and n.box.x - 8 < S.cx < n.box.right + 8
                          and n.box.bottom + 30 > low and n.box.y - 8 < high]
            host = nodes[s.host].box
            if T.x > S.cx and not in_the_way:
                f.points = [start, (S.cx, T.cy), (T.x, T.cy)]
            elif T.x > host.right + 20:  # round what is below the task, in the column gap
                step = start[1] + (-20 if start[1] < S.cy else 20)
                gap_x = host.right + min(H_GAP / 2, (T.x - host.right) / 2)
                f.points = [start, (S.cx, step), (gap_x, step), (gap_x, T.cy), (T.x, T.cy)]
            else:
                f.points = [start, (S.cx, T.y - 20), (T.cx, T.y - 20), (T.cx, T.y)]
        elif f.id in back:
            lane = t.lane
            k = loop_count.get(lane, 0)
            loop_count[lane] = k + 1
            lo, hi = min(s.rank, t.rank), max(s.rank, t.rank)
            below = [n.box.bottom for n in nodes.values()
                     if n.lane == lane and lo <= n.rank <= hi]
            channel = max(below + [T.bottom]) + 22 + 12 * k
            # out of the source's right side into the gap before the next column, down
            # (or up) to a channel under the nodes, back left, and up into the target
            gap_x = S.right + 18 + 10 * k
            f.points = [(S.right, S.cy), (gap_x, S.cy), (gap_x, channel), (T.cx, channel),
                        (T.cx, T.bottom)]
        elif s.kind in _GATEWAYS and abs(T.cy - S.cy) > 1:
            start = (S.cx, S.bottom) if T.cy > S.cy else (S.cx, S.y)
            f.points = [start, (S.cx, T.cy), (T.x, T.cy)]
        elif t.kind in _GATEWAYS and abs(T.cy - S.cy) > 1:
            end = (T.cx, T.bottom) if S.cy > T.cy else (T.cx, T.y)
            f.points = [(S.right, S.cy), (T.cx, S.cy), end]
        elif abs(T.cy - S.cy) <= 1:
            between = [n.box for n in nodes.values()
                       if n.host is None and n.id not in (s.id, t.id)
                       and n.box.x < T.x and n.box.right > S.right
                       and n.box.y < S.cy < n.box.bottom]
            if between:
                channel = max(b.bottom for b in between) + 25
                f.points = [(S.cx, S.bottom), (S.cx, channel), (T.cx, channel),
                            (T.cx, T.bottom)]
            else:
                f.points = [(S.right, S.cy), (T.x, T.cy)]
        else:
            mid = T.x - H_GAP / 2
            f.points = [(S.right, S.cy), (mid, S.cy), (mid, T.cy), (T.x, T.cy)]
        if f.name:
            (x1, y1), (x2, y2) = f.points[0], f.points[1]
            room = abs(x2 - x1) - 12 if abs(y1 - y2) < 1 else H_GAP
            width = max(24, min(7 * len(f.name), room))
            lines = -(-7 * len(f.name) // int(width))
            if abs(y1 - y2) < 1:  # under the first leg, which is horizontal
                f.label = Box(x1 + 6, y1 + 4, width, 14 * lines)
            else:  # inside the corner where the flow turns towards its target
                down = y2 > y1
                f.label = Box(x2 + 6, y2 - 4 - 14 * lines if down else y2 + 4, width,
                              14 * lines)
    for n in nodes.values():
        if n.body is not None:
            route(n.body)


# -- writing the DI -------------------------------------------------------------------------

def _n(v: float) -> str:
    return str(int(round(v)))


def _bounds(box: Box) -> str:
    return f'<dc:Bounds x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.w)}" height="{_n(box.h)}" />'


def _label_box(node: Node) -> Box | None:
    if not node.name or node.kind not in _EVENTS | _GATEWAYS:
        return None
    b = node.box
    width = 110
    lines = max(1, -(-len(node.name) * 7 // width))
    height = 14 * lines
    if node.kind in _GATEWAYS:
        return Box(b.cx - width / 2, b.y - height - 6, width, height)
    if node.kind == "boundaryEvent":  # below left, clear of the flow leaving it
        return Box(b.x + 8 - width, b.bottom + 2, width, height)
    return Box(b.cx - width / 2, b.bottom + 6, width, height)


def _shapes(body: Body, out: list[str], indent: str) -> None:
    ordered = sorted(body.nodes.values(), key=lambda n: (n.host is not None, n.order))
    for n in ordered:
        extra = ' isExpanded="true"' if n.body is not None else ""
        out.append(f'{indent}<bpmndi:BPMNShape id="{n.id}_di" bpmnElement="{n.id}"{extra}>')
        out.append(f"{indent}  {_bounds(n.box)}")
        label = _label_box(n)
        if label is not None:
            out.append(f"{indent}  <bpmndi:BPMNLabel>{_bounds(label)}</bpmndi:BPMNLabel>")
        out.append(f"{indent}</bpmndi:BPMNShape>")
        if n.body is not None:
            _shapes(n.body, out, indent)


def _edges(body: Body, out: list[str], indent: str) -> None:
    for f in body.flows:
        out.append(f'{indent}<bpmndi:BPMNEdge id="{f.id}_di" bpmnElement="{f.id}">')
        for x, y in f.points:
            out.append(f'{indent}  <di:waypoint x="{_n(x)}" y="{_n(y)}" />')
        if f.label is not None:
            out.append(f"{indent}  <bpmndi:BPMNLabel>{_bounds(f.label)}</bpmndi:BPMNLabel>")
        out.append(f"{indent}</bpmndi:BPMNEdge>")
    for n in body.nodes.values():
        if n.body is not None:
            _edges(n.body, out, indent)


def diagram(root) -> str:
    """The BPMNDiagram element (as text) for a definitions element."""
    out: list[str] = []
    ind = "      "
    collaboration = root.find("bpmn:collaboration", NS)
    processes = {p.get("id"): p for p in root.findall("bpmn:process", NS)}
    if collaboration is not None:
        plane_element = collaboration.get("id")
        pools = [(p.get("id"), processes.get(p.get("processRef")))
                 for p in collaboration.findall("bpmn:participant", NS)]
    else:
        first = next(iter(processes.values()))
        plane_element = first.get("id")
        pools = [(None, first)]
    ident = plane_element
    top = ORIGIN[1]
    for participant, process in pools:
        if process is None:
            continue
        lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
        lane_of = {}
        for i, lane in enumerate(lanes):
            for ref in lane.findall("bpmn:flowNodeRef", NS):
                lane_of[(ref.text or "").strip()] = i
        body = read_body(process, lane_of)
        body.lane_count = max(body.lane_count, len(lanes), 1)
        layout(body, with_lanes=True)
        left = ORIGIN[0] + (POOL_LABEL if participant else 0)
        shift(body, left, top)
        route(body)
        width, height = body.size
        if participant:
            pool = Box(ORIGIN[0], top, width + POOL_LABEL, height)
            out.append(f'{ind}<bpmndi:BPMNShape id="{participant}_di" '
                       f'bpmnElement="{participant}" isHorizontal="true">')
            out.append(f"{ind}  {_bounds(pool)}")
            out.append(f"{ind}</bpmndi:BPMNShape>")
        for lane, box in zip(lanes, body.lane_boxes, strict=False):
            out.append(f'{ind}<bpmndi:BPMNShape id="{lane.get("id")}_di" '
                       f'bpmnElement="{lane.get("id")}" isHorizontal="true">')
            out.append(f"{ind}  {_bounds(box)}")
            out.append(f"{ind}</bpmndi:BPMNShape>")
        _shapes(body, out, ind)
        _edges(body, out, ind)
        top += height + 60
    head = [f'  <bpmndi:BPMNDiagram id="BPMNDiagram_{ident}">',
            f'    <bpmndi:BPMNPlane id="BPMNPlane_{ident}" bpmnElement="{plane_element}">']
    tail = ["    </bpmndi:BPMNPlane>", "  </bpmndi:BPMNDiagram>"]
    return "\n".join(head + out + tail)


_DIAGRAM = re.compile(r"\n?[ \t]*<bpmndi:BPMNDiagram\b.*?</bpmndi:BPMNDiagram>", re.S)
_NAMESPACES = {"bpmndi": BPMNDI, "dc": DC, "di": DI}


def with_layout(text: str) -> str:
    """The file's text with its DI replaced by a freshly computed one."""
    root = etree.fromstring(text.encode("utf-8"))
    if local(root) != "definitions" or etree.QName(root).namespace != BPMN:
        raise ValueError("not a BPMN definitions document")
    body = _DIAGRAM.sub("", text)
    for prefix, uri in _NAMESPACES.items():
        if f'xmlns:{prefix}="{uri}"' not in body:
            body = re.sub(r"<bpmn:definitions\b", f'<bpmn:definitions xmlns:{prefix}="{uri}"',
                          body, count=1)
    end = body.rindex("</bpmn:definitions>")
    return body[:end].rstrip() + "\n" + diagram(root) + "\n" + body[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a file's DI differs from the layout")
    args = parser.parse_args(argv)
    stale = 0
    for path in args.files:
        text = path.read_text(encoding="utf-8")
        new = with_layout(text)
        if new == text:
            continue
        if args.check:
            print(f"{path}: layout out of date")
            stale += 1
        else:
            path.write_text(new, encoding="utf-8")
            print(f"{path}: layout written")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
