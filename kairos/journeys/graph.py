"""A journey's graph: the edges leaving each node, and what is wrong with a graph before it is saved (unknown
nodes, nodes no path reaches, loops that never wait, loops that could send faster than hourly)."""

from __future__ import annotations

import heapq
from typing import Any

from kairos.journeys.domain import Cycle, Delay, Exit, JourneyIn, Message, RandomSplit, Split, WaitFor


def successors(node: Any) -> dict[str, str]:
    """The field -> node id edges leaving ``node``."""
    if isinstance(node, WaitFor):
        return {"on_event": node.on_event, "on_timeout": node.on_timeout}
    if isinstance(node, Split):
        out = {f"branches[{i}].next": b.next for i, b in enumerate(node.branches)}
        out["else"] = node.else_
        return out
    if isinstance(node, RandomSplit):
        return {f"variants[{i}].next": v.next for i, v in enumerate(node.variants)}
    if isinstance(node, Cycle):
        return {"next": node.next, "on_expiry": node.on_expiry}
    if isinstance(node, Exit):
        return {}
    return {"next": node.next}


# Nodes that wait: a path that loops back must pass one, or it would run forever in one step.
WAITING = (Delay, WaitFor, Cycle)
# A loop that can send waits at least this long per turn, so no journey can flood a customer.
MIN_LOOP_HOURS = 1.0


def _least_wait(node: Any, field: str) -> float:
    """The least time a path spends at ``node`` before it leaves by the edge ``field``."""
    if isinstance(node, Delay):
        return node.min_hours()
    if isinstance(node, WaitFor) and field == "on_timeout":
        return node.timeout_hours
    return 0.0  # an awaited event, an engagement or an expiry may come at once


def fast_loops(journey: JourneyIn) -> list[tuple[str, str]]:
    """Loops through a sending node whose turn may take less than :data:`MIN_LOOP_HOURS`, as (field, reason)."""
    errors = []
    for start, node in journey.nodes.items():
        if not isinstance(node, Message | Cycle):
            continue
        # Dijkstra over the least waits, from the sending node back to itself.
        best: dict[str, tuple[float, list[str]]] = {}
        heap = [(_least_wait(node, f), t, [start]) for f, t in successors(node).items()]
        heapq.heapify(heap)
        while heap:
            hours, nid, trail = heapq.heappop(heap)
            if nid == start:
                if hours < MIN_LOOP_HOURS:
                    loop = " -> ".join([*trail, start])
                    errors.append(
                        (
                            f"nodes.{start}",
                            f"the loop {loop} can send every {hours:g} hours: wait at least "
                            f"{MIN_LOOP_HOURS:g} hour per turn (a delay or a wait_for timeout)",
                        )
                    )
                break
            if nid in best or nid not in journey.nodes:
                continue
            best[nid] = (hours, trail)
            here = journey.nodes[nid]
            for f, t in successors(here).items():
                heapq.heappush(heap, (hours + _least_wait(here, f), t, [*trail, nid]))
    return errors


def graph_errors(journey: JourneyIn) -> list[tuple[str, str]]:
    """What is wrong with the graph as (field, reason), the field naming the node (empty: nothing)."""
    errors: list[tuple[str, str]] = []
    if journey.start not in journey.nodes:
        errors.append(("start", f"unknown node '{journey.start}'"))
        return errors
    for nid, node in journey.nodes.items():
        for field, target in successors(node).items():
            if target not in journey.nodes:
                errors.append((f"nodes.{nid}.{field}", f"unknown node '{target}'"))
    if errors:
        return errors
    # A cycle with no waiting node would never stop within one step.
    state: dict[str, int] = {}

    def visit(nid: str, path: list[str]) -> None:
        if isinstance(journey.nodes[nid], WAITING):
            return
        if state.get(nid) == 1:
            loop = path[path.index(nid) :] + [nid]
            errors.append((f"nodes.{nid}", f"the loop {' -> '.join(loop)} never waits"))
            return
        if state.get(nid) == 2:
            return
        state[nid] = 1
        for target in successors(journey.nodes[nid]).values():
            visit(target, [*path, nid])
        state[nid] = 2

    for nid in journey.nodes:
        visit(nid, [])
    seen: set[str] = set()
    stack = [journey.start]
    while stack:
        nid = stack.pop()
        if nid in seen:
            continue
        seen.add(nid)
        stack.extend(successors(journey.nodes[nid]).values())
    for nid in journey.nodes:
        if nid not in seen:
            errors.append((f"nodes.{nid}", f"not reachable from start '{journey.start}'"))
    return errors or fast_loops(journey)
