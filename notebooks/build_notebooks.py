"""Write the example notebooks from the cells below; with ``--execute``, run them and keep their outputs.

    python notebooks/build_notebooks.py             # write the .ipynb files, without outputs
    python notebooks/build_notebooks.py --execute   # write and execute them in place (what is committed)

The cells live here, not only in the .ipynb files, so a notebook is
reproducible and reviewable as code; ``tests/test_notebooks.py`` checks that the
committed notebooks hold exactly these cells and that they execute.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KERNEL_SPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str, tag: str | None = None) -> nbformat.NotebookNode:
    """A code cell; ``tag`` names it for tests/test_notebooks.py, which checks its outputs."""
    cell = nbformat.v4.new_code_cell(textwrap.dedent(text).strip())
    if tag:
        cell.metadata["tags"] = [tag]
    return cell


# Every notebook starts by choosing its backends: the GPU where there is one, the emulator always.
SETUP = code("""
    import numpy as np
    import gputrace
    from gputrace.backends.nvrtc import gpu_available

    BACKENDS = ("numpy", "emulate", "cuda") if gpu_available() else ("numpy", "emulate")
    print("checking", " and ".join(BACKENDS[1:]), "against numpy")
""", "setup")

TRACING_MYCELL = [
    md("""
        # Tracing `MyCell`

        The first example of the TorchScript tutorial, with gputrace: `gputrace.trace` runs a module once on
        example arrays and records every NumPy operation into a typed graph, as `torch.jit.trace` does for
        PyTorch. The module is written with `gputrace.nn`, whose `Linear` works like `torch.nn.Linear`.
    """),
    SETUP,
    code("""
        from gputrace import nn

        class MyCell(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(4, 4, seed=0)

            def forward(self, x, h):
                new_h = np.tanh(self.linear(x) + h)
                return new_h, new_h

        my_cell = MyCell()
        rng = np.random.default_rng(0)
        x, h = rng.random((3, 4), dtype=np.float32), rng.random((3, 4), dtype=np.float32)
        traced_cell = gputrace.trace(my_cell, (x, h))
        print(traced_cell)
    """, "trace"),
    md("Calling the traced cell gives what the module gives:"),
    code("""
        eager, traced = my_cell(x, h), traced_cell(x, h)
        for e, t in zip(eager, traced):
            np.testing.assert_allclose(t, e, rtol=1e-6)
        traced[0]
    """),
    md("""
        ## The graph

        `.graph` is what tracing recorded: the call into `self.linear` stays a `prim::CallMethod`, and every
        value carries its dtype, shape, strides and device. The comment on each line is the source line
        that made it.
    """),
    code("print(traced_cell.graph)", "graph"),
    md("`.inlined_graph` flattens the call into the `Linear`, and `.code` prints the graph as Python:"),
    code("""
        print(traced_cell.inlined_graph)
        print(traced_cell.code)
    """, "inlined-graph-and-code"),
    md("""
        ## What the compiler made of it

        `lower(x, h)` specialises the graph to these arrays, optimises it and fuses it. The matmul goes to
        cuBLAS (through CuPy) as a library call; the bias add, `+ h` and `tanh` become one CUDA kernel. In
        a notebook the graph draws itself with the fusion group boxed.
    """),
    code("""
        program = traced_cell.lower(x, h)
        print("launch plan:", [type(step).__name__ for step in program.plan])  # the matmul, then one kernel
        program.graph
    """, "lowered"),
    md("""
        The traced cell itself shows the launch plan: what each step reads and writes, the bytes a kernel
        must move, and its registers and spills on sm_90 (compiled by NVRTC, no GPU needed).
    """),
    code("traced_cell", "traced-cell"),
    md("""
        ## Other shapes, save and load

        Shapes are specialised per call, so the cell runs on a larger batch too. `gputrace.save` writes the
        graph and the parameters to one file; `gputrace.load` reads it back without running any code from it.
    """),
    code("""
        import os, tempfile

        x5, h5 = rng.random((5, 4), dtype=np.float32), rng.random((5, 4), dtype=np.float32)
        np.testing.assert_allclose(traced_cell(x5, h5)[0], my_cell(x5, h5)[0], rtol=1e-6)

        path = os.path.join(tempfile.mkdtemp(), "my_cell.gpt")
        gputrace.save(traced_cell, path)
        loaded = gputrace.load(path)
        np.testing.assert_array_equal(loaded(x, h)[0], traced_cell(x, h)[0])
        print(loaded.graph)
    """, "saved-and-loaded"),
    md("""
        ## Running the kernel

        `run(..., backend="emulate")` builds the generated CUDA with the host C++ compiler and runs it on
        the CPU; `backend="cuda"` runs it on the GPU. `check_trace` compares every backend with NumPy.
    """),
    code("""
        emulated = traced_cell.run(x, h, backend="emulate")
        np.testing.assert_allclose(emulated[0], traced[0], rtol=1e-5, atol=1e-6)
        report = gputrace.check_trace(traced_cell, (x, h), backends=BACKENDS)
        assert report.ok
        report
    """, "check-trace"),
]

FUSION_AND_KERNELS = [
    md("""
        # Fusion and kernels: GELU, softmax, layer norm

        gputrace groups connected elementwise operations, and reductions with what they feed and what feeds
        them, into fusion groups; each group becomes one CUDA kernel rendered from `cuda_templates/`.
    """),
    SETUP,
    code("""
        from IPython.display import display
        from gputrace.display import graph_text

        def gelu(x):
            return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))

        def softmax(x):
            e = np.exp(x - np.max(x, axis=-1, keepdims=True))
            return e / np.sum(e, axis=-1, keepdims=True)

        def layernorm(x, weight, bias):
            mean = np.mean(x, axis=-1, keepdims=True)
            centred = x - mean
            var = np.mean(centred * centred, axis=-1, keepdims=True)
            return centred / np.sqrt(var + 1e-5) * weight + bias

        rng = np.random.default_rng(0)
        x = rng.standard_normal((256, 512), dtype=np.float32)
        weight, bias = rng.standard_normal(512, dtype=np.float32), rng.standard_normal(512, dtype=np.float32)
        examples = {"gelu": (gelu, (x,)), "softmax": (softmax, (x,)), "layernorm": (layernorm, (x, weight, bias))}
        traced = {name: gputrace.trace(fn, args) for name, (fn, args) in examples.items()}
    """, "examples"),
    md("""
        ## GELU: eight operations, one kernel

        The text layout below is what a terminal shows (`gputrace.display.graph_text`); constants are
        written inline and the fusion group is framed.
    """),
    code("""
        gelu_program = traced["gelu"].lower(x)
        print("launch plan:", [step.name for step in gelu_program.plan])  # every op in one kernel
        print(graph_text(gelu_program.graph))
    """, "gelu-graph"),
    md("""
        The kernel displays its CUDA source; PTX, SASS and its resources for sm_90 are one click away
        (NVRTC compiles them when the cell is displayed).
    """),
    code("""
        gelu_kernel = gelu_program.kernels[0]
        gelu_kernel
    """, "gelu-kernel"),
    md("NVRTC compiles for an explicit architecture, so PTX and SASS need no GPU:"),
    code("""
        ptx = gelu_kernel.ptx("sm_90")
        print("\\n".join(line for line in ptx.splitlines() if line.strip())[:1500])
    """, "ptx"),
    code("""
        sass = gelu_kernel.sass("sm_90")
        instructions = [line.strip() for line in sass.splitlines() if line.strip().startswith("/*0")]
        print(f"{len(instructions)} SASS instructions; the first 20:")
        print("\\n".join(instructions[:20]))
    """, "sass"),
    code("""
        print(gelu_kernel.resources("sm_90"))
    """, "resources"),
    md("""
        ## Softmax and layer norm: reductions in row kernels

        A reduction joins the group of the elementwise work before it (a prologue) and after it (an
        epilogue): softmax's max, subtract, exp, sum and divide become one row kernel, and so does layer
        norm with its two means: one kernel each (issue 4's target), as their launch plans show.
    """),
    code("""
        for name in ("softmax", "layernorm"):
            fn, args = examples[name]
            program = traced[name].lower(*args)
            print(f"--- {name}: launch plan {[step.name for step in program.plan]}")  # one row kernel
            print(graph_text(program.graph))
    """, "row-kernels"),
    code("traced['layernorm']", "layernorm"),
    md("""
        ## Attention written with `np.einsum`: two matmuls and one kernel

        `np.einsum` is traced as what it computes: here a batched matmul (cuBLAS through CuPy on the GPU)
        for the scores, the scaled softmax as one row kernel, and a batched matmul for the weighted values.
        (The scale is a Python float: `np.sqrt(d)` would be a float64 NumPy scalar, which promotes the scores
        to float64 in NumPy, and so in the trace.)
    """),
    code("""
        def attention(q, k, v):
            scores = np.einsum("bhqd,bhkd->bhqk", q, k) * q.shape[-1] ** -0.5
            return np.einsum("bhqk,bhkd->bhqd", softmax(scores), v)

        q, k, v = (rng.standard_normal((2, 4, 64, 32), dtype=np.float32) for _ in range(3))
        attention_program = gputrace.trace(attention, (q, k, v)).lower(q, k, v)
        print("launch plan:", [step.name for step in attention_program.plan])
        print(graph_text(attention_program.graph))
    """, "attention"),
    md("""
        ## `emulate` against `numpy`

        `run(..., backend="numpy")` is the reference: the fused graph run op by op with NumPy.
        `backend="emulate"` runs the generated CUDA kernels themselves on the CPU: the host C++ compiler
        builds the very source shown above against an emulation header (blocks on worker threads, CUDA
        threads as fibers, shared memory, barriers and warp shuffles), so a wrong index or a missing
        `__syncthreads` shows up here without a GPU. The first call builds the kernels (then cached on
        disk); the second only runs them. On a machine with a GPU the `cuda` backend runs too.
    """),
    code("""
        import time
        from gputrace.check import compare_arrays
        from gputrace.display import text_table

        def timed_run(traced_fn, args, backend):
            start = time.perf_counter()
            result = traced_fn.run(*args, backend=backend)
            return result, 1e3 * (time.perf_counter() - start)

        rows = []
        for name, (fn, args) in examples.items():
            eager = fn(*args)
            for backend in BACKENDS:
                result, first_ms = timed_run(traced[name], args, backend)
                result, second_ms = timed_run(traced[name], args, backend)
                difference = compare_arrays(eager, result, tolerance=1e-5)
                assert difference.ok, (name, backend, difference)
                runs = "NumPy, op by op" if backend == "numpy" else f"{len(traced[name].kernels)} generated kernel(s)"
                rows.append([name, backend, runs, f"{first_ms:.1f}", f"{second_ms:.1f}", f"{difference.max_abs:.2g}"])
        print(text_table(["program", "backend", "runs", "1st call ms", "2nd call ms", "max abs error vs eager"], rows))
    """, "backends"),
    md("""
        What `emulate` does for each kernel can be done by hand: build the GELU kernel's source shown above
        with the host compiler and launch it on NumPy arrays, as `cudaLaunchKernel` would on the GPU.
    """),
    code("""
        from gputrace.backends.host_compiler import build_host_module

        module = build_host_module(gelu_kernel.source, [gelu_kernel.name])
        print(gelu_kernel.name, module.parameters(gelu_kernel.name))
        out = np.empty_like(x)
        grid = gelu_kernel.grid(max_blocks=64)
        module.launch(gelu_kernel.name, grid, gelu_kernel.block, gelu_kernel.arguments([x], [out]))
        print(f"{grid} blocks of {gelu_kernel.block} threads; max abs error vs NumPy {np.abs(out - gelu(x)).max():.2g}")
        assert compare_arrays(gelu(x), out, tolerance=1e-5).ok
    """, "by-hand"),
    md("""
        `check_trace` does the comparison for every output and shows it as a table, with the largest absolute
        and relative error per backend:
    """),
    code("""
        for name, (fn, args) in examples.items():
            report = gputrace.check_trace(traced[name], args, backends=BACKENDS)
            assert report.ok, report
            print(name)
            display(report)
    """, "check-trace"),
]

VALIDATION = [
    md("""
        # Validation: device against CPU, and traces that do not generalise

        `gputrace.check_trace` runs one compiled program on several backends and compares every output with
        the first (NumPy, the reference). Tracing itself checks its graph too: it traces again and compares.
    """),
    SETUP,
    code("""
        import warnings

        def adam_step(param, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            return param - lr * m / (np.sqrt(v) + eps), m, v

        rng = np.random.default_rng(0)
        arrays = tuple(rng.standard_normal(10_000, dtype=np.float32) for _ in range(3))
        arrays += (rng.random(10_000, dtype=np.float32),)
        traced_adam = gputrace.trace(adam_step, arrays)
        report = gputrace.check_trace(traced_adam, arrays, backends=BACKENDS)
        report
    """, "check-trace"),
    md("""
        With a tolerance of zero the table shows how far the kernels are from NumPy, bit for bit. Kernels
        are compiled without fused multiply-add and call NumPy-exact device functions, so arithmetic like this
        Adam step usually matches exactly; transcendental functions may differ in the last bits.
    """),
    code("""
        exact = gputrace.check_trace(traced_adam, arrays, backends=BACKENDS, tolerance=0.0, raise_on_mismatch=False)
        exact
    """, "exact"),
    md("""
        ## A data-dependent function

        A Python `if` on an array's value runs once, while tracing: the branch taken is recorded, the other
        is lost. gputrace warns with a `TracerWarning` that names the line.
    """),
    code("""
        def double_if_positive(x):
            if x.sum() > 0:
                return x * 2
            return -x

        x = np.arange(1, 5, dtype=np.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            traced = gputrace.trace(double_if_positive, x)
        messages = [str(w.message) for w in caught if issubclass(w.category, gputrace.TracerWarning)]
        print(messages[0])
    """, "warning"),
    md("The trace took the positive branch, so it is wrong for a negative input:"),
    code("""
        print("eager: ", double_if_positive(-x))
        print("traced:", traced(-x))
    """, "wrong-branch"),
    md("""
        Giving `check_inputs` that take the other branch turns the warning into a `TracingCheckError` that
        shows the first operator where the two traces part:
    """),
    code("""
        try:
            gputrace.trace(double_if_positive, x, check_inputs=[(x,), (-x,)])
        except gputrace.TracingCheckError as error:
            message = str(error)
        else:
            raise AssertionError("the check did not fail")
        print(message)
    """, "check-inputs"),
    md("A random array drawn inside the function is a constant of the trace, and differs between traces:"),
    code("""
        def noisy(x):
            return x + np.random.default_rng().standard_normal(x.shape).astype(np.float32)

        try:
            gputrace.trace(noisy, x)
        except gputrace.TracingCheckError as error:
            message = str(error)
        else:
            raise AssertionError("the check did not fail")
        print(message)
    """, "noisy"),
]

PERFORMANCE = [
    md("""
        # Performance

        `benchmarks/run.py` (also `python -m gputrace bench`) times every benchmark program with gputrace,
        CuPy, `cupy.fuse` and PyTorch on the GPU, and measures the CPU-side costs: tracing, lowering, compiling
        and the reference executor. It writes `benchmarks/RESULTS.md` and the same numbers as
        `benchmarks/results.json`. On a machine with a GPU this notebook runs a quick pass of the suite;
        without one it reads the committed results.
    """),
    SETUP,
    code("""
        import json, tempfile
        from pathlib import Path
        import matplotlib.pyplot as plt
        from IPython.display import Markdown, display

        BENCHMARKS = Path.cwd().parent / "benchmarks"  # notebooks run from notebooks/
        if gpu_available():
            from gputrace.cli import load_benchmarks
            folder = Path(tempfile.mkdtemp())
            load_benchmarks(BENCHMARKS / "run.py").main(
                ["--quick", "--sizes", "large", "--programs", "gelu,black_scholes,adam,softmax,layernorm",
                 "--budget", "240", "--out", str(folder / "RESULTS.md")])
        else:
            folder = BENCHMARKS
        have_results = (folder / "results.json").is_file() and (folder / "RESULTS.md").is_file()
        results = json.loads((folder / "results.json").read_text()) if have_results else {}
        print(f"results from {folder}:", results.get("device", {}).get("summary", "none yet: run `python -m gputrace bench`"))
    """, "results"),
    md("""
        ## The benchmark table

        RESULTS.md marks each of its tables with `<!-- gputrace:NAME:begin -->` and `<!-- gputrace:NAME:end -->`,
        so the notebook can show one table at a time.
    """),
    code("""
        def results_table(name):
            text = (folder / "RESULTS.md").read_text()
            begin, end = f"<!-- gputrace:{name}:begin -->", f"<!-- gputrace:{name}:end -->"
            assert begin in text and end in text, f"RESULTS.md has no {name} table"
            return text[text.index(begin) + len(begin):text.index(end)].strip()

        if have_results:
            display(Markdown(results_table("main")))
    """, "main-table"),
    md("""
        ## Achieved bandwidth

        Bytes that must move (every input read once, every output written once) over the measured device time,
        against the device's copy bandwidth measured in the same run. Without a GPU there are no such numbers,
        and the notebook plots the CPU-side figures instead: tracing, lowering and rendering the CUDA source.
    """),
    code("""
        measured = [r for r in results.get("rows", []) if isinstance(r.get("gbps"), (int, float))]
        if measured:
            assert all(r["gbps"] > 0 for r in measured)
            size = "large" if any(r["size"] == "large" for r in measured) else measured[-1]["size"]
            measured = [r for r in measured if r["size"] == size]
            programs = list(dict.fromkeys(r["program"] for r in measured))
            implementations = list(dict.fromkeys(r["implementation"] for r in measured))
            width = 0.8 / len(implementations)
            fig, ax = plt.subplots(figsize=(10, 4))
            for k, implementation in enumerate(implementations):
                gbps = {r["program"]: r["gbps"] for r in measured if r["implementation"] == implementation}
                ax.bar([i + k * width for i in range(len(programs))], [gbps.get(p, 0) for p in programs], width,
                       label=implementation)
            copy = results.get("ceilings", {}).get("copy_gbps")
            if copy:
                ax.axhline(copy, color="black", linestyle="--", label=f"copy bandwidth ({copy:.0f} GB/s)")
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(programs))], programs)
            ax.set_ylabel("achieved GB/s")
            ax.set_title(f"{size} inputs on {results['device']['name']}")
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
            plt.show()
        else:
            print("No GPU numbers in these results yet: every GPU row says",
                  repr(next((r["status"] for r in results.get("rows", [])), "not measured")))
    """, "bandwidth"),
    code("""
        trace = [r for r in results.get("trace", []) if r.get("status") == "ok"]
        if not measured and trace:
            assert all(r["trace_s"] > 0 and r["lower_s"] > 0 for r in trace)
            names = [r["program"] for r in trace]
            fig, ax = plt.subplots(figsize=(10, 4))
            bottom = [0.0] * len(trace)
            for key, label in [("trace_s", "trace"), ("lower_s", "lower"), ("render_s", "render CUDA")]:
                ms = [r[key] * 1e3 for r in trace]
                ax.bar(names, ms, bottom=bottom, label=label)
                bottom = [b + m for b, m in zip(bottom, ms)]
            ax.set_ylabel("ms (median)")
            ax.set_title(f"CPU-side cost per program ({trace[0]['size']} inputs), {results['device']['name']}")
            ax.legend()
            plt.show()
            display(Markdown(results_table("trace")))
    """, "cpu-costs"),
]

NOTEBOOKS = {
    "01_tracing_mycell.ipynb": TRACING_MYCELL,
    "02_fusion_and_kernels.ipynb": FUSION_AND_KERNELS,
    "03_validation.ipynb": VALIDATION,
    "04_performance.ipynb": PERFORMANCE,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` with its cells and no outputs."""
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": KERNEL_SPEC, "language_info": {"name": "python"}})
    notebook.cells = [nbformat.from_dict(dict(cell)) for cell in NOTEBOOKS[name]]  # cells shared by notebooks
    for k, cell in enumerate(notebook.cells):
        cell.id = f"cell-{k}"  # stable ids: rebuilding does not change the files
    return notebook


def execute(notebook: nbformat.NotebookNode, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell in this Python, in the notebooks folder, with this checkout importable; raises on errors."""
    from nbclient import NotebookClient
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})
    client.execute(env=env)
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--execute", action="store_true", help="execute the notebooks and keep their outputs")
    parser.add_argument("names", nargs="*", help=f"notebooks to build (default: all of {', '.join(NOTEBOOKS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"unknown notebooks: {', '.join(unknown)}")
    for name in args.names or NOTEBOOKS:
        notebook = build(name)
        if args.execute:
            execute(notebook)
        nbformat.write(notebook, HERE / name)
        print(f"wrote {HERE / name}{' (executed)' if args.execute else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
