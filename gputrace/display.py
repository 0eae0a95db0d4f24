"""Views of what the compiler did, for notebooks (``_repr_html_``) and terminals (plain text).

The graph is drawn with each fusion group boxed: as an SVG when Graphviz's
``dot`` is on the PATH, else as a compact text layout (jaxpr-like lines, a
``┌ … └`` frame around every group). A kernel shows its highlighted CUDA
source with PTX, SASS and resources behind ``<details>``; these compile with
NVRTC when the HTML is rendered, and say why when NVRTC is missing. A traced
function shows its launch plan as a table: kernels and library calls, what
each reads and writes, the bytes it must move, registers and spills.

>>> import numpy as np, gputrace
>>> from gputrace.display import graph_text
>>> def scaled_tanh(x):
...     return np.tanh(x) * 2
>>> x = np.ones(4, np.float32)
>>> program = gputrace.trace(scaled_tanh, x).lower(x)
>>> len(program.kernels)
1
>>> print(graph_text(program.graph))
scaled_tanh(%x: f32[4]):
  ┌ fusion group gt_fused_0_tanh_multiply
  │ %1: f32[4] = np::tanh %x
  │ %3: f32[4] = np::multiply %1 2
  └ %4 = %3
  return (%4)
"""
from __future__ import annotations

import html
import itertools
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .codegen.kernel import DEFAULT_ARCH, Kernel, LibraryCall
from .errors import BackendUnavailableError, GputraceError
from .ir import HTML_VIEWS, Graph, Node, TensorType, Type, Value, format_attr

FUSION_GROUP = "gt::FusionGroup"
_STYLE_OK, _STYLE_BAD = "color:#1a7f37", "color:#cf222e;font-weight:bold"


# ----------------------------------------------------------------------------- small pieces


def short_type(t: Type) -> str:
    """``f32[3,4]`` for arrays (``…, strided`` when not contiguous); other types as they print."""
    if not isinstance(t, TensorType):
        return str(t)
    kind = "bool" if t.dtype.kind == "b" else f"{t.dtype.kind}{t.dtype.itemsize * 8}"
    return f"{kind}[{','.join(map(str, t.shape))}{'' if t.is_contiguous else ', strided'}]"


def typed_names(names: Sequence[str], types: Sequence[Type]) -> str:
    return ", ".join(f"%{n}: {short_type(t)}" for n, t in zip(names, types))


def typed_values(values: Sequence[Value]) -> str:
    """``%x: f32[3,4], %h: f32[3,4]``."""
    return typed_names([v.name for v in values], [v.type for v in values])


def attempt(compute: Callable[[], Any],
            errors: tuple[type[BaseException], ...] = (ImportError, GputraceError, OSError, RuntimeError)
            ) -> tuple[Any, BaseException | None]:
    """``(compute(), None)``, or ``(None, error)`` when it raises one of ``errors`` (a tool is missing or fails)."""
    try:
        return compute(), None
    except errors as exc:
        return None, exc


def describe(error: BaseException, lines: int | None = None) -> str:
    """``Type: message``; ``lines`` keeps the first lines of a long message (a compiler log) for one-line views."""
    message = str(error)
    if lines is not None:
        message = " ".join([line.strip() for line in message.splitlines() if line.strip()][:lines])
    return f"{type(error).__name__}: {message}"


def unavailable(error: BaseException, lines: int | None = None) -> str:
    """Why an output is missing, pointing at ``doctor`` when installing something would help."""
    hint = "; `python -m gputrace doctor` says what to install" \
        if isinstance(error, (ImportError, BackendUnavailableError)) else ""
    return f"not available ({describe(error, lines)}){hint}"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = [[str(h) for h in headers], ["-" * w for w in widths]] + [[str(c) for c in row] for row in rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of already-escaped HTML cells."""
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


# ----------------------------------------------------------------------------- graphs


def _operand(value: Value, names: dict[Value, str]) -> str:
    """How a node's input prints: constants inline as literals (as in a jaxpr), other values by name."""
    producer = value.producer
    if producer is not None and producer.kind == "prim::Constant":
        return format_attr(producer.attrs["value"])
    return names.get(value, f"%{value.name}")


def _node_call(node: Node, names: dict[Value, str]) -> str:
    attrs = {k: v for k, v in node.attrs.items() if not (node.kind == FUSION_GROUP and k == "kernel")}
    text = node.kind + ("[" + ", ".join(f"{k}={format_attr(v)}" for k, v in attrs.items()) + "]" if attrs else "")
    return " ".join([text] + [_operand(v, names) for v in node.inputs])


def _node_results(node: Node) -> str:
    return typed_values(node.outputs)


def _node_line(node: Node, names: dict[Value, str], separator: str) -> str:
    """``%y: f32[4] = np::add %x 1``; the DOT label puts a line break between results and call."""
    call = _node_call(node, names)
    return f"{_node_results(node)}{separator}{call}" if node.outputs else call


def _group_label(node: Node) -> str:
    return f"fusion group {node.attrs.get('kernel', '')}".rstrip()


def _enter_group(node: Node, names: dict[Value, str]) -> dict[Value, str]:
    """Names inside a group's subgraph: its inputs print as the outer values they are bound to."""
    inner = dict(names)
    inner.update((v, _operand(outer, names)) for v, outer in zip(node.subgraph.inputs, node.inputs))
    return inner


def graph_text(graph: Graph) -> str:
    """A compact terminal layout: one line per node, constants inline, each fusion group framed."""
    lines = [f"{graph.name}({typed_values(graph.inputs)}):"]

    def emit(g: Graph, names: dict[Value, str], prefix: str) -> None:
        for node in g.nodes:
            if node.kind == "prim::Constant":
                continue
            if node.kind == FUSION_GROUP:
                inner = _enter_group(node, names)
                lines.append(f"{prefix}┌ {_group_label(node)}")
                emit(node.subgraph, inner, prefix + "│ ")
                bound = ", ".join(f"%{o.name} = {_operand(v, inner)}" for o, v in zip(node.outputs, node.subgraph.outputs))
                lines.append(f"{prefix}└ {bound}")
            else:
                lines.append(prefix + _node_line(node, names, " = "))

    emit(graph, {}, "  ")
    lines.append(f"  return ({', '.join(_operand(v, {}) for v in graph.outputs)})")
    return "\n".join(lines)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def graph_dot(graph: Graph) -> str:
    """Graphviz DOT source: inputs, ops and outputs as nodes, data flow as edges, one cluster per fusion group."""
    lines = ["digraph gputrace {", "  rankdir=TB;", '  node [shape=box, style="rounded", fontname="monospace", fontsize=10];']
    source: dict[Value, str] = {}  # the DOT node that produces each value
    for k, value in enumerate(graph.inputs):
        source[value] = f"in{k}"
        lines.append(f"  in{k} [shape=ellipse, label={_dot_quote(f'%{value.name}: {short_type(value.type)}')}];")
    counter = itertools.count()
    edges: list[str] = []  # at the top level: an edge inside a cluster would pull both ends into it

    def emit(g: Graph, names: dict[Value, str], indent: str) -> None:
        for node in g.nodes:
            if node.kind == "prim::Constant":
                continue
            if node.kind == FUSION_GROUP:
                for inner_input, outer in zip(node.subgraph.inputs, node.inputs):
                    if outer in source:
                        source[inner_input] = source[outer]
                lines.append(f"{indent}subgraph cluster_{next(counter)} {{")
                lines.append(f'{indent}  label={_dot_quote(_group_label(node))}; style="rounded,filled"; '
                             f'fillcolor="#eef3fc"; color="#4a7bd0";')
                emit(node.subgraph, _enter_group(node, names), indent + "  ")
                lines.append(f"{indent}}}")
                for outer, inner_output in zip(node.outputs, node.subgraph.outputs):
                    if inner_output in source:
                        source[outer] = source[inner_output]
                continue
            dot_id = f"n{next(counter)}"
            label = _dot_quote(_node_line(node, names, "\n"))
            lines.append(f"{indent}{dot_id} [label={label}];")
            edges.extend(f"  {source[v]} -> {dot_id};" for v in dict.fromkeys(node.inputs) if v in source)
            source.update((v, dot_id) for v in node.outputs)

    emit(graph, {}, "  ")
    lines.append('  out [shape=ellipse, label="return"];')
    edges.extend(f"  {source[v]} -> out;" for v in dict.fromkeys(graph.outputs) if v in source)
    return "\n".join(lines + edges + ["}"])


def graphviz_dot() -> str | None:
    """Graphviz's ``dot`` program, or None when Graphviz is not installed."""
    return shutil.which("dot")


def render_svg(dot_source: str) -> str | None:
    """The SVG Graphviz draws for ``dot_source``, or None when ``dot`` is not installed or fails."""
    dot = graphviz_dot()
    if dot is None:
        return None
    try:
        done = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or "<svg" not in done.stdout:
        return None
    return done.stdout[done.stdout.index("<svg"):]  # drop the XML prologue so it embeds in HTML


def graph_html(graph: Graph) -> str:
    """The graph as a picture (SVG with Graphviz, else the text layout) and its IR behind a click."""
    svg = render_svg(graph_dot(graph))
    picture = svg if svg is not None else _pre(graph_text(graph))
    return f"<div class='gputrace-graph'>{picture}{_details('IR', _pre(str(graph)))}</div>"


def fusion_group_signature(node: Node) -> str:
    """``reads %5: f32[3,4], %h: f32[3,4]; writes %7: f32[3,4]``: what a fusion group's kernel takes and gives."""
    return f"reads {typed_values(node.inputs)}; writes {typed_values(node.outputs)}"


def fusion_group_html(node: Node) -> str:
    """A ``gt::FusionGroup`` node: its kernel name, what it reads and writes, and its subgraph drawn as a graph."""
    return (f"<div class='gputrace-fusion-group'><b>{html.escape(_group_label(node))}</b>"
            f"<div>{html.escape(fusion_group_signature(node))}</div>{graph_html(node.subgraph)}</div>")


# ----------------------------------------------------------------------------- kernels


def highlight_cuda(source: str) -> str:
    """CUDA source as HTML, highlighted by Pygments when installed (inline styles: no stylesheet needed)."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import CudaLexer
    except ImportError:
        return _pre(source)
    return highlight(source, CudaLexer(), HtmlFormatter(noclasses=True, nobackground=True))


def kernel_signature(kernel: Kernel) -> str:
    """``name(%a: f32[3,4]) -> (%b: f32[3,4]), 96 bytes``."""
    return (f"{kernel.name}({typed_names(kernel.inputs, kernel.input_types)}) -> "
            f"({typed_names(kernel.outputs, kernel.output_types)}), {kernel.bytes_moved:,} bytes")


def kernel_resources(kernel: Kernel, arch: str = DEFAULT_ARCH) -> tuple[Any, str]:
    """``(KernelResources, None)`` for ``arch``, or ``(None, the error that prevented it)``."""
    return attempt(lambda: kernel.resources(arch))


def kernel_html(kernel: Kernel, arch: str = DEFAULT_ARCH) -> str:
    """Signature, highlighted source, and PTX, SASS and resources for ``arch`` one click away."""
    ptx, ptx_missing = attempt(lambda: kernel.ptx(arch))
    sass, sass_missing = attempt(lambda: kernel.sass(arch))
    resources, resources_missing = kernel_resources(kernel, arch)
    sections = [
        _details(f"PTX ({arch})", _pre(ptx if ptx is not None else unavailable(ptx_missing))),
        _details(f"SASS ({arch})", _pre(sass if sass is not None else unavailable(sass_missing))),
        _details(f"resources ({arch})", _pre(str(resources) if resources is not None
                                             else unavailable(resources_missing))),
    ]
    return (f"<div class='gputrace-kernel'><code><b>{html.escape(kernel.name)}</b></code>"
            f"<div>{html.escape(kernel_signature(kernel))}</div>{highlight_cuda(kernel.source)}{''.join(sections)}</div>")


def kernel_text(kernel: Kernel, arch: str = DEFAULT_ARCH) -> str:
    """Signature, source and the resources line for a terminal."""
    resources, missing = kernel_resources(kernel, arch)
    usage = str(resources) if resources is not None else unavailable(missing, lines=2)
    return f"{kernel_signature(kernel)}\n{kernel.source.rstrip()}\nresources ({arch}): {usage}"


# ----------------------------------------------------------------------------- traced functions


PLAN_HEADERS = ("#", "step", "reads", "writes", "bytes", "registers", "spills (st/ld)")


def plan_rows(program: Any, arch: str = DEFAULT_ARCH) -> tuple[list[list[str]], BaseException | None]:
    """One row per launch-plan step, and the first error that kept registers out (None: they are all there)."""
    rows, missing = [], None
    for k, step in enumerate(program.plan):
        if isinstance(step, LibraryCall):
            rows.append([str(k), f"library: {step.name}", typed_names(step.inputs, step.input_types),
                         typed_names(step.outputs, step.output_types), f"{step.bytes_moved:,}", "", ""])
            continue
        resources, error = kernel_resources(step, arch)
        missing = missing or error
        rows.append([str(k), f"kernel: {step.name}", typed_names(step.inputs, step.input_types),
                     typed_names(step.outputs, step.output_types), f"{step.bytes_moved:,}",
                     "–" if resources is None else str(resources.registers),
                     "–" if resources is None else f"{resources.spill_stores}/{resources.spill_loads}"])
    return rows, missing


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def program_signature(program: Any) -> str:
    """``forward(%x: f32[3,4]) -> (f32[3,4]): 1 kernel, 1 library call``: what a Program takes, gives and launches."""
    graph = program.graph
    kernels = sum(isinstance(step, Kernel) for step in program.plan)
    return (f"{graph.name}({typed_values(graph.inputs)}) -> "
            f"({', '.join(short_type(v.type) for v in graph.outputs)}): {_plural(kernels, 'kernel')}, "
            f"{_plural(len(program.plan) - kernels, 'library call')}")


def traced_function_signature(traced: Any) -> str:
    """``gelu(%x: f32[256,512])``: a traced function's name and the arrays it was traced with."""
    return f"{traced.name}({typed_names(traced.input_names, traced.input_types)})"


@dataclass
class PlanSummary:
    """What both views of a Program show: its signature line, the Program, the plan table, a note."""
    header: str
    program: Any
    rows: list[list[str]]
    note: str


def plan_summary(program_or_traced: Any, arch: str = DEFAULT_ARCH) -> PlanSummary:
    """The summary of a Program, or of a TracedFunction (a TracedModule: its ``forward``) at its traced signature."""
    program = _program_of(program_or_traced)
    rows, missing = plan_rows(program, arch)
    note = f"registers and spills for {arch}: {unavailable(missing, lines=2)}" if missing else ""
    return PlanSummary(program_signature(program), program, rows, note)


def _program_of(program_or_traced: Any) -> Any:
    from .traced import Program, TracedModule
    if isinstance(program_or_traced, Program):
        return program_or_traced
    function = program_or_traced
    if isinstance(function, TracedModule):
        function = function.methods["forward"]
    return function._program(function.input_types, None)  # the Program ``function.kernels`` describes


def traced_function_html(traced: Any, arch: str = DEFAULT_ARCH) -> str:
    """Signature, the fused graph, the launch plan table and every kernel (source, PTX, SASS): for a
    TracedFunction, a TracedModule or a Program."""
    summary = plan_summary(traced, arch)
    cells = [[html.escape(c) for c in row] for row in summary.rows]
    note = f"<p><i>{html.escape(summary.note)}</i></p>" if summary.note else ""
    kernels = "".join(_details(k.name, kernel_html(k, arch)) for k in summary.program.kernels)
    return (f"<div class='gputrace-traced'><p><code>{html.escape(summary.header)}</code></p>"
            f"{graph_html(summary.program.graph)}<p>launch plan (registers for {arch}):</p>"
            f"{html_table(PLAN_HEADERS, cells)}{note}{kernels}</div>")


def traced_function_text(traced: Any, arch: str = DEFAULT_ARCH) -> str:
    """Signature, the fused graph's layout and the launch plan table, for a terminal."""
    summary = plan_summary(traced, arch)
    note = f"\n{summary.note}" if summary.note else ""
    return (f"{summary.header}\n\n{graph_text(summary.program.graph)}\n\n"
            f"launch plan (registers for {arch}):\n{text_table(PLAN_HEADERS, summary.rows)}{note}")


# ----------------------------------------------------------------------------- check reports


def check_report_html(report: Any) -> str:
    """Outputs × backends: max abs and rel error against the reference, ok or mismatch (with why)."""
    backends = list(dict.fromkeys(r.backend for r in report.rows))
    outputs = list(dict.fromkeys(r.output for r in report.rows))
    cell = {(r.output, r.backend): r.difference for r in report.rows}
    headers = ["output"] + [f"{b}: {what}" for b in backends for what in ("max abs", "max rel", "result")]
    rows = []
    for output in outputs:
        row = [str(output)]
        for backend in backends:
            d = cell.get((output, backend))
            if d is None:
                row += ["", "", ""]
                continue
            verdict = (f"<span style='{_STYLE_OK}'>ok</span>" + (f" {html.escape(d.note)}" if d.note else "") if d.ok else
                       f"<span style='{_STYLE_BAD}'>mismatch</span> {html.escape(d.reason)}")
            row += [f"{d.max_abs:.3g}", f"{d.max_rel:.3g}", verdict]
        rows.append(row)
    verdict = "all outputs agree" if report.ok else "MISMATCH"
    return (f"<div class='gputrace-check'><p>check against <b>{html.escape(report.reference)}</b> "
            f"(tolerance {report.tolerance:g}): {verdict}</p>{html_table(headers, rows)}</div>")


HTML_VIEWS.update({Graph: graph_html, Node: fusion_group_html, Kernel: kernel_html})
