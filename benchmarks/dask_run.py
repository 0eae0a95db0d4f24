"""gputrace on Dask against Dask's own evaluation of the same NumPy code, on LocalClusters of 1 and 2 worker
processes: softmax, layer norm and x.std() over a row-chunked float32 array (the numpy backend per chunk).

    PYTHONPATH=. python benchmarks/dask_run.py [--sizes small,large] [--repeat 3]
    PYTHONPATH=. python benchmarks/dask_run.py --profile [--sizes large] [--programs std]

Writes its table into benchmarks/RESULTS.md between the "dask" markers (the rest of the file is run.py's).
``--profile`` writes nothing: per run it prints where the time goes, as measures that a loaded machine skews
less than wall time: the workers' process CPU time, and the task stream's compute and transfer time by kind
of task (chunk steps, combines, aggregates; Dask's own by its layer names).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

import gputrace  # noqa: E402

SIZES = {"small": ((4096, 256), 1024), "large": ((65536, 1024), 4096)}  # shape, rows per chunk (16 MiB)
BEGIN, END = "<!-- dask: begin (benchmarks/dask_run.py) -->", "<!-- dask: end -->"


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layer_norm(x):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5)


def std(x):
    return x.std()


PROGRAMS = {"softmax": softmax, "layer_norm": layer_norm, "std": std}


def tasks(array, prefix: str | None = None) -> int:
    keys = [k[0] if isinstance(k, tuple) else k for k in dict(array.__dask_graph__())]
    return sum(1 for k in keys if prefix is None or k.startswith(prefix))


def timed(make, x, repeat: int) -> float:
    """The median time to persist ``make(x)``, each run on a fresh copy of ``x`` (Dask's keys are deterministic:
    the same input would find its result still held from the run before)."""
    import distributed
    times = []
    for _ in range(repeat):
        fresh = x.map_blocks(np.copy, name=f"input-{uuid.uuid4().hex}").persist()
        distributed.wait(fresh)
        start = time.perf_counter()
        result = make(fresh).persist()
        distributed.wait(result)
        times.append(time.perf_counter() - start)
        del result, fresh
    return statistics.median(times)


def task_kind(key) -> str:
    name = key[0] if isinstance(key, tuple) else key
    for kind in ("combine", "aggregate", "partial"):
        if kind in name:
            return kind
    return "chunk step" if name.startswith("gputrace-") else name.rsplit("-", 1)[0]


def profiled(client, make, x) -> str:
    """One run of ``make(x)``: the workers' CPU time and the task stream's time by kind of task and action."""
    import distributed
    fresh = x.map_blocks(np.copy, name=f"input-{uuid.uuid4().hex}").persist()
    distributed.wait(fresh)
    before = client.run(time.process_time)
    with distributed.get_task_stream(client) as stream:
        start = time.perf_counter()
        distributed.wait(make(fresh).persist())
        wall = time.perf_counter() - start
    cpu = sum(client.run(time.process_time)[w] - before[w] for w in before)
    found: dict = {}
    for task in stream.data:
        for span in task["startstops"]:
            entry = found.setdefault((task_kind(task["key"]), span["action"]), [0, 0.0])
            entry[0] += 1
            entry[1] += span["stop"] - span["start"]
    spans = ", ".join(f"{kind} {action} {n}x {total * 1e3:.0f} ms" for (kind, action), (n, total) in sorted(found.items()))
    return f"wall {wall * 1e3:.0f} ms, workers' CPU {cpu * 1e3:.0f} ms; {spans}"


def main() -> None:
    import dask.array as da
    import distributed
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out-of-core", action="store_true",
                        help="also x.std() of 4 GiB (64 MiB chunks) on 2 workers limited to 1 GiB each")
    parser.add_argument("--profile", action="store_true", help="print where the time goes; write nothing")
    parser.add_argument("--programs", default=",".join(PROGRAMS))
    args = parser.parse_args()
    programs = {name: PROGRAMS[name] for name in args.programs.split(",")}
    rows = []
    load = os.getloadavg()[0]
    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
            for size in args.sizes.split(","):
                shape, rows_per_chunk = SIZES[size]
                x = da.random.default_rng(0).standard_normal(shape, chunks=(rows_per_chunk, -1),
                                                             dtype=np.float32).persist()
                distributed.wait(x)
                for name, fn in programs.items():
                    traced = gputrace.trace(fn, x)
                    timed(traced, x, 1)  # compile on the workers first
                    if args.profile:
                        for label, make in (("gputrace", traced), ("Dask's own", fn)):
                            for _ in range(args.repeat):
                                print(f"{name} {size} {workers} worker(s), {label}: {profiled(client, make, x)}")
                        continue
                    ours = timed(traced, x, args.repeat)
                    own = timed(fn, x, args.repeat)
                    chunks = x.numblocks[0]
                    rows.append((name, size, workers, ours, own, tasks(traced(x), "gputrace-") / chunks,
                                 (tasks(fn(x)) - tasks(x)) / chunks))
                    print(rows[-1], file=sys.stderr)
    if args.profile:
        return
    out_of_core = []
    if args.out_of_core:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="1GiB", dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
            x = da.random.default_rng(0).standard_normal((1 << 16, 1 << 14), chunks=(1 << 10, 1 << 14),
                                                         dtype=np.float32)
            traced = gputrace.trace(std, x)
            for label, make in (("gputrace", lambda: traced(x)), ("Dask's own", lambda: std(x))):
                start = time.perf_counter()
                value = client.compute(make(), sync=True)
                out_of_core.append(f"{label} {time.perf_counter() - start:.1f} s (std {float(value):.6f})")
                print(out_of_core[-1], file=sys.stderr)
    lines = [BEGIN, "## gputrace on Dask (CPU, numpy chunks)", "",
             "Median wall time to persist the result on a LocalCluster of worker processes (1 thread each); "
             "tasks per chunk counted in the graph (Dask's own: every op's task, without the input's). "
             f"Load average before and after: {load:.1f}, {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
             "(other processes on the machine skew these times, the scaling most).", "",
             "| program | size | workers | gputrace s | Dask's own s | speed-up | gputrace tasks/chunk | "
             "Dask tasks/chunk |", "|---|---|---|---|---|---|---|---|"]
    for name, size, workers, ours, own, t_ours, t_own in rows:
        lines.append(f"| {name} | {size} | {workers} | {ours:.3f} | {own:.3f} | {own / ours:.2f}x | {t_ours:.2f} | "
                     f"{t_own:.2f} |")
    scaling = []
    for name, size, workers, ours, *_ in rows:
        if workers == 2:
            one = next(r[3] for r in rows if r[:2] == (name, size) and r[2] == 1)
            scaling.append(f"{name} {size}: {one / ours:.2f}x")
    lines += ["", "Scaling from 1 to 2 workers (gputrace): " + ", ".join(scaling) + "."]
    if out_of_core:
        lines += ["", "Out of core, x.std() of a lazily generated 4 GiB float32 array in 64 MiB chunks on 2 workers "
                  "limited to 1 GiB each (generation included): " + "; ".join(out_of_core) + "."]
    lines.append(END)
    path = REPO / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    section = "\n".join(lines)
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    print(section)


if __name__ == "__main__":
    main()
