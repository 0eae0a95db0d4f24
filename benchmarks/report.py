"""Turn the measured results (one JSON-ready dict) into the targets, RESULTS.md and the console text.

The tables of RESULTS.md sit between ``<!-- gputrace:NAME:begin -->`` and
``<!-- gputrace:NAME:end -->`` markers (NAME: targets, main, programs,
host_overhead, compile, trace, reference) so that a notebook can cut them out;
``results.json`` holds the same numbers and is what the notebook reads.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

# (program, size) pairs the targets of issue 4 are about
ELEMENTWISE_TARGETS = ("gelu", "black_scholes", "adam")
CUPY_SPEEDUP_TARGETS = ("gelu", "adam")
NORM_TARGETS = ("softmax", "layernorm", "rmsnorm")
HOST_OVERHEAD_US = 20.0
COLD_COMPILE_S = 0.5
WARM_COMPILE_S = 0.005


@dataclass(frozen=True)
class Unit:
    """What a figure (a number in the results) measures, and which values it may take."""

    symbol: str
    values: str = "positive"  # "positive" (> 0), "count" (a whole number >= 0), "non-negative" or "any"


# The unit of every figure in the results, by the end of its name (the longest end that matches), so that a new
# figure named by these conventions (plan_bytes, nvrtc_s, dask_us, ...) is checked by tests/test_benchmarks.py
# (finite, its sign, a whole number, shown in RESULTS.md as in the JSON) with no new test.
UNITS = {
    "_s": Unit("s"), "_ms": Unit("ms"), "_us": Unit("µs"), "us_per_call": Unit("µs"),
    "overhead_us": Unit("µs", "any"),  # a difference of two times
    "gbps": Unit("GB/s"), "tflops": Unit("TFLOP/s"), "pct_copy": Unit("%"),
    "ratio": Unit("×"), "speedup": Unit("×"),
    "bytes": Unit("B", "count"), "flops": Unit("flop", "count"), "kernels": Unit("kernels", "count"),
    "library_calls": Unit("calls", "count"), "samples": Unit("samples", "count"), "sms": Unit("SMs", "count"),
    "cache_files_after_cold_run": Unit("files", "count"), "schema": Unit("version", "count"),
    "rel_error": Unit("", "non-negative"), "measured": Unit("the target's unit"),
}


def unit_of(name: str) -> Unit | None:
    """The unit of the figure called ``name`` (see UNITS), or None when its name follows no convention."""
    ends = [end for end in UNITS if name.endswith(end)]
    return UNITS[max(ends, key=len)] if ends else None


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` significant digits (thousands grouped); anything else as text."""
    if x is None:
        return "—"
    if not is_number(x):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{x:,.{decimals}f}"


def main_rows(results: dict) -> dict[tuple[str, str, str], dict]:
    return {(r["program"], r["size"], r["implementation"]): r for r in results.get("rows", [])}


# ----------------------------------------------------------------------------- targets


def _missing(row: dict | None, what: str) -> str:
    if row is None:
        return f"not measured ({what} not run)"
    status = row.get("status", "")
    return status if status.startswith("not measured") else f"not measured ({status})"


def _ok(row: dict | None) -> bool:
    return row is not None and row.get("status") == "ok" and is_number(row.get("time_us"))


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def evaluate_targets(results: dict) -> list[dict]:
    """Each target of issue 4 with its measured value and PASS, FAIL or not measured (why)."""
    rows = main_rows(results)
    targets: list[dict] = []

    def add(target: str, measured: Any, unit: str, threshold: str, verdict: str) -> None:
        targets.append({"target": target, "measured": measured, "unit": unit, "threshold": threshold,
                        "verdict": verdict})

    for program in ELEMENTWISE_TARGETS:
        row = rows.get((program, "large", "gputrace"))
        name = f"{program} large: gputrace share of copy bandwidth"
        if _ok(row) and is_number(row.get("pct_copy")):
            add(name, row["pct_copy"], "%", "≥ 85", _verdict(row["pct_copy"] >= 85))
        else:
            add(name, None, "%", "≥ 85", _missing(row, f"{program} large"))
    for program in CUPY_SPEEDUP_TARGETS:
        ours, theirs = rows.get((program, "large", "gputrace")), rows.get((program, "large", "cupy"))
        name = f"{program} large: speed-up over CuPy eager"
        if _ok(ours) and _ok(theirs):
            speedup = theirs["time_us"] / ours["time_us"]
            add(name, speedup, "×", "≥ 3", _verdict(speedup >= 3))
        else:
            add(name, None, "×", "≥ 3", _missing(ours if not _ok(ours) else theirs, f"{program} large"))
    for program in NORM_TARGETS:
        ours, compiled = rows.get((program, "large", "gputrace")), rows.get((program, "large", "torch.compile"))
        name = f"{program} 8192×8192: gputrace share of copy bandwidth"
        if _ok(ours) and is_number(ours.get("pct_copy")):
            add(name, ours["pct_copy"], "%", "≥ 75", _verdict(ours["pct_copy"] >= 75))
        else:
            add(name, None, "%", "≥ 75", _missing(ours, f"{program} large"))
        name = f"{program} 8192×8192: time relative to torch.compile"
        if _ok(ours) and _ok(compiled):
            ratio = ours["time_us"] / compiled["time_us"]
            add(name, ratio, "× torch.compile time", "≤ 1", _verdict(ratio <= 1.0))
        else:
            add(name, None, "× torch.compile time", "≤ 1",
                _missing(ours if not _ok(ours) else compiled, f"{program} large"))

    host = next((r for r in results.get("host_overhead", []) if r.get("implementation") == "gputrace"), None)
    name = "host time of a one-kernel call (tiny GELU)"
    if host is not None and is_number(host.get("us_per_call")):
        add(name, host["us_per_call"], "µs", f"≤ {HOST_OVERHEAD_US:g}",
            _verdict(host["us_per_call"] <= HOST_OVERHEAD_US))
    else:
        add(name, None, "µs", f"≤ {HOST_OVERHEAD_US:g}", _missing(host, "host overhead"))

    nvrtc = results.get("compile", {}).get("nvrtc", {})
    for key, target, limit in [("cold_s", "cold NVRTC compile, slowest kernel", COLD_COMPILE_S),
                               ("warm_disk_s", "warm compile (disk cache, fresh process), slowest kernel",
                                WARM_COMPILE_S),
                               ("warm_memory_s", "warm compile (memory cache), slowest kernel", WARM_COMPILE_S)]:
        times = nvrtc.get(key) or []
        if nvrtc.get("status") == "ok" and times:
            add(target, max(times) * 1e3, "ms", f"≤ {limit * 1e3:g}", _verdict(max(times) <= limit))
        else:
            add(target, None, "ms", f"≤ {limit * 1e3:g}",
                f"not measured ({nvrtc.get('status', 'compile figures not run')})")
    where = results.get("device", {}).get("name", "unknown device")
    for t in targets:
        t["device"] = where
    return targets


# ----------------------------------------------------------------------------- markdown


def table(header: list[str], rows: Iterable[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def section(name: str, title: str, intro: str, body: str) -> str:
    return (f"## {title}\n\n{intro}\n\n<!-- gputrace:{name}:begin -->\n{body}\n<!-- gputrace:{name}:end -->\n")


def speedups(results: dict) -> dict[tuple[str, str, str], float]:
    """t(implementation) / t(gputrace) for every other row that has both: above 1, gputrace is faster."""
    rows = main_rows(results)
    out = {}
    for key, row in rows.items():
        ours = rows.get((key[0], key[1], "gputrace"))
        if key[2] != "gputrace" and _ok(row) and _ok(ours):
            out[key] = row["time_us"] / ours["time_us"]
    return out


def header_table(results: dict) -> str:
    env, dev, ceil = results.get("environment", {}), results.get("device", {}), results.get("ceilings", {})
    rows = [["date", results.get("date")], ["device", dev.get("summary", dev.get("name"))]]
    if dev.get("gpu"):
        rows += [["driver / CUDA runtime", f"{env.get('driver', '?')} / {env.get('cuda_runtime', '?')}"]]
    rows += [["NVRTC", env.get("nvrtc")], ["CuPy", env.get("cupy")], ["torch", env.get("torch")],
             ["numpy", env.get("numpy")], ["gputrace", env.get("gputrace")], ["python", env.get("python")],
             ["host", env.get("host")], ["command", f"`{results.get('command', '')}`"]]
    copy = ceil.get("copy_gbps")
    rows.append(["copy bandwidth", f"{fmt(copy)} GB/s ({ceil.get('copy_note', '')})" if is_number(copy)
                 else ceil.get("status", "not measured")])
    mm = ceil.get("matmul_tflops")
    rows.append(["fp32 matmul", f"{fmt(mm)} TFLOP/s ({ceil.get('matmul_note', '')})" if is_number(mm)
                 else ceil.get("status", "not measured")])
    rows.append(["wall time of this run", f"{fmt(results.get('wall_s'))} s"])
    return table(["", ""], rows)


def markdown(results: dict) -> str:
    targets = results.get("targets") or evaluate_targets(results)
    ratio = speedups(results)
    parts = ["# gputrace benchmark results\n",
             "Written by `benchmarks/run.py` (see `benchmarks/README.md` for the columns). The same numbers are in "
             "`results.json`. Every figure below was measured in this run on the device named here; "
             "nothing is carried over from other runs.\n",
             header_table(results) + "\n"]
    parts.append(section(
        "targets", "Targets (issue 4)", f"Measured on: {results.get('device', {}).get('name', '?')}.",
        table(["target", "measured", "unit", "threshold", "verdict"],
              [[t["target"], t["measured"], t["unit"], t["threshold"], t["verdict"]] for t in targets])))
    parts.append(section(
        "main", "Main table",
        "Median device time per call (CUDA events, after warm-up, rotating fresh random input sets). GB/s and "
        "% copy BW count the bytes that must move (inputs read once, outputs written once). "
        "'gputrace speed-up' is this row's time over gputrace's (above 1: gputrace is faster). "
        "'kernels' is generated kernels + library calls (matmul) per gputrace call; 'plan traffic' the bytes its "
        "launch plan moves (each step's inputs read once, outputs written once) over the bytes that must move.",
        table(["program", "size", "implementation", "kernels", "plan traffic", "time (µs)", "p10–p90 (µs)", "GB/s",
               "% copy BW", "TFLOP/s", "gputrace speed-up", "rel. error", "first call (s)", "status"],
              [[r["program"], r["size"], r["implementation"], _kernel_text(r), _traffic_text(r), r.get("time_us"),
                _spread(r),
                r.get("gbps"), r.get("pct_copy"), r.get("tflops"),
                ratio.get((r["program"], r["size"], r["implementation"])),
                _sci(r.get("rel_error")), r.get("setup_s"), r.get("status")] for r in results.get("rows", [])])))
    parts.append(section(
        "programs", "Programs", "Bytes that must move and flop counts as declared in `benchmarks/programs.py` "
        "(float32; one flop per elementwise operation as written, 2·M·N·K per matmul).",
        table(["program", "description", "size", "dimensions", "MiB moved", "MFLOP"],
              [[p["program"], p["description"], p["size"], p["dims"], p["bytes"] / 2**20, p["flops"] / 1e6]
               for p in results.get("programs", [])])))
    parts.append(section(
        "host_overhead", "Host time per call, tiny input",
        "GELU on 1024 float32 elements: wall time per call (time.perf_counter over many back-to-back calls, "
        "one device synchronisation at the end of each batch; median of batches). This is the Python and "
        "launch overhead a call costs when the device work is negligible. The 'launch plan only' row runs on any "
        "machine: gputrace's own Python per call (outputs allocated with NumPy, each step run, the kernel "
        "launch a no-op), the share of a GPU call that is not CuPy's allocation and launch.",
        table(["implementation", "device kernels per call", "µs per call", "status"],
              [[r["implementation"], r.get("kernels"), r.get("us_per_call"), r.get("status")]
               for r in results.get("host_overhead", [])])))
    parts.append(section("compile", "Compile time per kernel", _compile_intro(results), _compile_table(results)))
    first = results.get("compile", {}).get("first_call", {})
    parts.append(section(
        "first_call", "First call up to the launch (CPU side)",
        "A program's first call on the cuda backend up to its first kernel launch, measured on the CPU without "
        "launching: `gputrace.trace` (with the default check), `lower`, and NVRTC for the architecture shown, in "
        "the cold-cache compile process after NVRTC is loaded (the first compile in process above).",
        table(["program", "size", "arch", "trace (ms)", "lower (ms)", "NVRTC (ms)", "total (ms)", "total CPU (ms)",
               "kernels", "status"],
              [[first.get("program"), first.get("size"), first.get("arch"), _ms(first.get("trace_s")),
                _ms(first.get("lower_s")), _ms(first.get("nvrtc_s")), _ms(first.get("total_s")),
                _ms(first.get("total_cpu_s")), first.get("kernels"), first.get("status", "not measured")]])))
    parts.append(section(
        "trace", "Trace and lowering time per program (CPU)",
        "Median wall time: `gputrace.trace` without and with the default trace check, then `lower` (specialise, "
        "simplify, fuse) and rendering the kernels' CUDA source, on NumPy inputs of the size shown.",
        table(["program", "size", "trace (ms)", "trace + check (ms)", "lower (ms)", "render (ms)", "kernels",
               "status"],
              [[r["program"], r["size"], _ms(r.get("trace_s")), _ms(r.get("trace_checked_s")), _ms(r.get("lower_s")),
                _ms(r.get("render_s")), r.get("kernels"), r.get("status")] for r in results.get("trace", [])])))
    parts.append(section(
        "reference", "Reference executor overhead (CPU)",
        "Calling the traced function on NumPy arrays (the `numpy` backend interprets the optimised graph) against "
        "calling the plain NumPy function; median µs per call.",
        table(["program", "size", "eager NumPy (µs)", "traced, numpy backend (µs)", "overhead (µs)", "ratio",
               "status"],
              [[r["program"], r["size"], r.get("eager_us"), r.get("traced_us"), r.get("overhead_us"),
                r.get("ratio"), r.get("status")] for r in results.get("reference", [])])))
    return "\n".join(parts)


KEPT = "<!-- gputrace:kept -->"


def kept_sections(text: str) -> str:
    """What follows the ``<!-- gputrace:kept -->`` line of an earlier report (hand-written before/after records),
    which a new run carries over unchanged."""
    at = text.find(KEPT)
    return "\n" + text[at:] if at >= 0 else ""


def _kernel_text(row: dict) -> str | None:
    if row.get("kernels") is None:
        return None
    calls = row.get("library_calls") or 0
    return f"{row['kernels']} + {calls} lib" if calls else str(row["kernels"])


def _traffic_text(row: dict) -> str | None:
    return f"{row['traffic_ratio']:.2f}" if is_number(row.get("traffic_ratio")) else None


def _spread(row: dict) -> str | None:
    if not is_number(row.get("p10_us")) or not is_number(row.get("p90_us")):
        return None
    return f"{fmt(row['p10_us'])}–{fmt(row['p90_us'])}"


def _sci(x: Any) -> Any:
    return f"{x:.1e}" if is_number(x) else x


def _ms(x: Any) -> Any:
    return x * 1e3 if is_number(x) else x


def _compile_intro(results: dict) -> str:
    c = results.get("compile", {})
    return (f"Each distinct kernel of the selected programs ({c.get('size', '?')} size), compiled for "
            f"`{c.get('arch', '?')}` through `Kernel.compile` (NVRTC) and, where the emulate backend exists, built "
            "with the host compiler. Cold: a fresh process with an empty temporary `GPUTRACE_CACHE_DIR`, after one "
            "unrelated compile that loads NVRTC (that first compile is shown separately). Warm (disk): a second fresh "
            "process on the same cache folder. Warm (memory): the same kernel again in the process that just "
            "compiled it. Times per kernel: median and slowest.")


def _compile_table(results: dict) -> str:
    c = results.get("compile", {})
    rows = []
    for backend in ("nvrtc", "emulate"):
        b = c.get(backend, {})
        first = b.get("process_first_s")
        for key, label in [("cold_s", "cold"), ("warm_disk_s", "warm (disk cache, fresh process)"),
                           ("warm_memory_s", "warm (memory cache)")]:
            times = b.get(key) or []
            cpu = (b.get("cold_cpu_s") or []) if key == "cold_s" else []
            rows.append([backend, label, len(times) or None,
                         statistics.median(times) * 1e3 if times else None, max(times) * 1e3 if times else None,
                         statistics.median(cpu) * 1e3 if cpu else None,
                         _ms(first) if key == "cold_s" else None, b.get("status", "not measured")])
    return table(["backend", "cache", "kernels", "median (ms)", "slowest (ms)", "median CPU time (ms)",
                  "first compile in process (ms)", "status"], rows)


def console_text(results: dict) -> str:
    """What the command prints: the whole report, with the targets repeated at the end (read first)."""
    targets = results.get("targets") or evaluate_targets(results)
    tail = table(["target", "measured", "unit", "threshold", "verdict"],
                 [[t["target"], t["measured"], t["unit"], t["threshold"], t["verdict"]] for t in targets])
    return markdown(results) + f"\n## Targets again (on {results.get('device', {}).get('name', '?')})\n\n{tail}\n"
