"""Checking traces: re-trace and compare graphs, compare with eager code, compare backends.

Every comparison names what differs: the first diverging operator with both
source lines, or the output with its max abs/rel error and the first graph
node whose value differs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .errors import TracingCheckError
from .ir import Graph, Node, Value, format_node
from .passes.cse import _hashable


# ----------------------------------------------------------------------------- comparing arrays


@dataclass
class Difference:
    """How far ``actual`` is from ``expected``; ``ok`` within the tolerance."""
    ok: bool
    max_abs: float = 0.0
    max_rel: float = 0.0
    reason: str = ""
    note: str = ""  # why a difference beyond the tolerance is still ok

    def __str__(self) -> str:
        if self.reason:
            return self.reason
        text = f"max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g}"
        return f"{text} ({self.note})" if self.note else text


def to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "get") and not isinstance(x, np.ndarray):
        x = x.get()
    return np.asarray(x)


def compare_arrays(expected: Any, actual: Any, tolerance: float) -> Difference:
    """Dtype and shape exactly; NaN where NaN; integers exactly; floats within ``tolerance`` (rel and abs),
    and never tighter than two units of the dtype's precision (float16's 1e-3: a sum in another order)."""
    e, a = to_numpy(expected), to_numpy(actual)
    if e.dtype != a.dtype:
        return Difference(False, reason=f"dtype {a.dtype} instead of {e.dtype}")
    if e.shape != a.shape:
        return Difference(False, reason=f"shape {a.shape} instead of {e.shape}")
    if e.size == 0:
        return Difference(True)
    if e.dtype.kind in "biu":
        wrong = e != a
        if wrong.any():
            diff = np.abs(e.astype(np.float64) - a.astype(np.float64))
            return Difference(False, float(diff.max()), float((diff / np.maximum(np.abs(e), 1)).max()),
                              reason=f"{int(wrong.sum())} of {e.size} elements differ (integers must match)")
        return Difference(True)
    tolerance = max(tolerance, 2 * float(np.finfo(e.dtype).eps))
    e64, a64 = e.astype(np.float64), a.astype(np.float64)
    nan_e, nan_a = np.isnan(e64), np.isnan(a64)
    if (nan_e != nan_a).any():
        return Difference(False, reason=f"NaN at {int((nan_e != nan_a).sum())} positions where the other has a number")
    finite = np.isfinite(e64) & np.isfinite(a64)
    inf_mismatch = (~finite & ~nan_e) & (e64 != a64)
    if inf_mismatch.any():
        return Difference(False, reason=f"infinities differ at {int(inf_mismatch.sum())} positions")
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity: not a difference
        diff = np.where(finite, np.abs(e64 - a64), 0.0)
    rel = diff / np.maximum(np.abs(e64), np.finfo(np.float64).tiny)
    max_abs, max_rel = float(diff.max(initial=0.0)), float(np.where(finite, rel, 0).max(initial=0.0))
    ok = bool((diff <= tolerance + tolerance * np.abs(np.where(finite, e64, 0))).all())
    return Difference(ok, max_abs, max_rel)


def judge_by_exact_values(expected: Any, actual: Any, exact: Any, tolerance: float, difference: Difference,
                          reference: str = "the reference") -> Difference:
    """``difference`` (``actual`` against ``expected``, beyond the tolerance) judged again by ``exact``.

    ``exact``: the same output computed in float64 from the same inputs. NumPy's float32 sums are not
    exact (a sum over a leading axis adds row after row: relative errors of 1e-3 on long columns), so a
    kernel that sums more accurately can differ from NumPy by more than the tolerance. Such an output is
    ok where each element is at least as close to ``exact`` as ``reference``'s (within the tolerance)."""
    e, a, x = to_numpy(expected), to_numpy(actual), np.asarray(to_numpy(exact))
    if difference.ok or difference.reason or e.dtype.kind != "f" or x.shape != e.shape:
        return difference
    e, a, x = e.astype(np.float64), a.astype(np.float64), x.astype(np.float64)
    finite = np.isfinite(e) & np.isfinite(a)
    judged = finite & np.isfinite(x)
    within = np.abs(a - e) <= tolerance + tolerance * np.abs(e)
    error_expected, error_actual = np.abs(e - x), np.abs(a - x)
    as_accurate = error_actual <= error_expected + tolerance * np.abs(x)
    if not (within | ~finite | (judged & as_accurate)).all():
        return difference

    def worst(error: np.ndarray) -> float:
        return float(np.where(judged, error / np.maximum(np.abs(x), np.finfo(np.float64).tiny), 0).max())
    note = (f"at least as accurate as {reference}: max rel error against float64 {worst(error_actual):.3g}, "
            f"{reference}'s {worst(error_expected):.3g}")
    return Difference(True, difference.max_abs, difference.max_rel, note=note)


# ----------------------------------------------------------------------------- comparing graphs


def _walk_with_inputs(graph: Graph) -> Iterator[tuple[Node, tuple]]:
    """Each node with its inputs named by position in the walk, so graphs can be compared structurally."""
    position: dict[Value, str] = {}

    def visit(g: Graph, prefix: str):
        for i, v in enumerate(g.inputs):
            position[v] = f"{prefix}in{i}"
        for n_index, node in enumerate(g.nodes):
            yield node, tuple(position.get(v, "?") for v in node.inputs)
            for k, v in enumerate(node.outputs):
                position[v] = f"{prefix}{n_index}.{k}"
            if node.subgraph is not None:
                yield from visit(node.subgraph, f"{prefix}{n_index}/")

    yield from visit(graph, "")


def _node_signature(node: Node, inputs: tuple, params: dict) -> tuple:
    attrs = dict(node.attrs)
    if node.kind == "prim::Param":
        array = to_numpy(params[attrs["name"]]) if attrs["name"] in params else None
        attrs = {"value": array}
    return (node.kind, inputs, _hashable(attrs), tuple(v.type.erase_shape() for v in node.outputs))


def first_graph_difference(a: Graph, a_params: dict, b: Graph, b_params: dict) -> tuple[Node | None, Node | None] | None:
    """The first pair of nodes that differ with shapes erased (None, None at a length mismatch); None if equal."""
    left, right = list(_walk_with_inputs(a)), list(_walk_with_inputs(b))
    for (na, ia), (nb, ib) in zip(left, right):
        if _node_signature(na, ia, a_params) != _node_signature(nb, ib, b_params):
            return na, nb
    if len(left) != len(right):
        extra = left[len(right)][0] if len(left) > len(right) else None
        other = right[len(left)][0] if len(right) > len(left) else None
        return extra, other
    outs_a = [str(v.type.erase_shape()) for v in a.outputs]
    outs_b = [str(v.type.erase_shape()) for v in b.outputs]
    if outs_a != outs_b:
        return None, None
    return None


def describe(node: Node | None) -> str:
    return format_node(node) if node is not None else "(nothing: the graph ended here)"


def check_graphs_agree(traced: Graph, traced_params: dict, retraced: Graph, retraced_params: dict,
                       which: str) -> None:
    difference = first_graph_difference(traced, traced_params, retraced, retraced_params)
    if difference is None:
        return
    first, second = difference
    # the same constant recorded at the same line with another value; from other lines it is another path
    constant = first is not None and second is not None and first.kind == second.kind and \
        first.kind in ("prim::Param", "prim::Constant") and first.source == second.source
    what = ("a constant differs between traces (a Python value computed from the data, e.g. float(x.sum()), "
            "or a captured array that changes per call, e.g. random numbers)"
            if constant else "the graphs differ: this usually means data-dependent control flow")
    hint = ""
    if traced.meta.get("reads_shape"):
        hint = "\nThe function reads array shapes: constants computed from shapes differ between inputs of other shapes."
    raise TracingCheckError(
        f"Tracing check failed on {which}: {what}.\n"
        f"  First diverging operator:\n"
        f"    traced:    {describe(first)}\n"
        f"    re-traced: {describe(second)}{hint}")


def aligned_values(a: Graph, b: Graph) -> Iterator[tuple[Node, Value, Value]]:
    """Corresponding output values of two structurally equal graphs, in execution order."""
    for (na, _), (nb, _) in zip(_walk_with_inputs(a), _walk_with_inputs(b)):
        for va, vb in zip(na.outputs, nb.outputs):
            yield na, va, vb


def first_differing_node(graph: Graph, computed: dict, expected_graph: Graph, expected: dict,
                         tolerance: float) -> tuple[Node, Difference] | None:
    for node, value, other in aligned_values(graph, expected_graph):
        if value not in computed or other not in expected:
            continue
        got, want = computed[value], expected[other]
        if not (hasattr(want, "dtype") or isinstance(want, (int, float, bool))):
            continue
        difference = compare_arrays(want, got, tolerance)
        if not difference.ok:
            return node, difference
    return None


# ----------------------------------------------------------------------------- reports


@dataclass
class OutputCheck:
    output: int
    backend: str
    difference: Difference


@dataclass
class CheckReport:
    """The result of :func:`gputrace.check_trace`: per output and backend, the error against the reference."""
    reference: str
    rows: list[OutputCheck] = field(default_factory=list)
    tolerance: float = 1e-5

    @property
    def ok(self) -> bool:
        return all(r.difference.ok for r in self.rows)

    def __str__(self) -> str:
        lines = [f"check against {self.reference} (tolerance {self.tolerance:g}):",
                 f"  {'output':>6}  {'backend':<8}  {'max abs':>10}  {'max rel':>10}  result"]
        for r in self.rows:
            d = r.difference
            verdict = ("ok" + (f" ({d.note})" if d.note else "")) if d.ok else "MISMATCH " + d.reason
            lines.append(f"  {r.output:>6}  {r.backend:<8}  {d.max_abs:>10.3g}  {d.max_rel:>10.3g}  {verdict}")
        return "\n".join(lines)

    __repr__ = __str__  # the table, not the dataclass fields

    def _repr_html_(self) -> str:
        from .display import check_report_html
        return check_report_html(self)
