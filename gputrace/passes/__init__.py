"""Graph passes: small functions from a graph to ``(graph, changed)``.

Passes may change the graph they are given; :func:`optimize` copies first.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

from ..ir import Graph
from .cse import cse
from .dce import dce
from .fold import fold
from .freeze import freeze
from .inline import inline
from .normalize import normalize

Pass = Callable[[Graph], "tuple[Graph, bool]"]
log = logging.getLogger("gputrace.graph")

SIMPLIFY: list[Pass] = [normalize, fold, cse, dce]


def run_passes(graph: Graph, passes: list[Pass], *, lint: bool | None = None) -> Graph:
    """Apply ``passes`` in order; with ``lint`` (default: under pytest) check invariants after each."""
    lint = ("PYTEST_CURRENT_TEST" in os.environ) if lint is None else lint
    for p in passes:
        graph, changed = p(graph)
        if lint:
            graph.lint()
        _log_change(p, graph, changed)
    return graph


def _log_change(p: Pass, graph: Graph, changed: bool) -> None:
    if changed and log.isEnabledFor(logging.DEBUG):
        log.debug("after %s:\n%s", p.__name__, graph)


def to_fixed_point(graph: Graph, passes: list[Pass], limit: int = 10) -> Graph:
    for _ in range(limit):
        changed = False
        for p in passes:
            graph, step = p(graph)
            _log_change(p, graph, step)
            changed |= step
        if not changed:
            break
    return graph


def inline_graph(graph: Graph) -> Graph:
    """The flattened graph of a module trace (``traced.inlined_graph``)."""
    return run_passes(graph.copy(), [inline])


def optimize(graph: Graph) -> Graph:
    """Inline, freeze, then normalise, fold, CSE and DCE to a fixed point; the input graph is not changed."""
    graph = run_passes(graph.copy(), [inline, freeze])
    graph = to_fixed_point(graph, SIMPLIFY)
    graph.lint()
    return graph


__all__ = ["inline", "freeze", "normalize", "fold", "cse", "dce", "optimize", "inline_graph", "run_passes"]
