"""gputrace on Dask against Dask's own evaluation of the same NumPy code, on LocalClusters of 1 and 2 worker
processes: softmax, layer norm and x.std() over a row-chunked float32 array (the numpy backend per chunk).

    PYTHONPATH=. python benchmarks/dask_run.py [--sizes small,large] [--repeat 7] [--tiles]
    PYTHONPATH=. python benchmarks/dask_run.py --profile [--sizes large] [--programs std]

Both clusters stay up and each repeat measures on 1 worker, then on 2, so that a noisy minute hits both. The
scaling from 1 to 2 workers is set beside the hardware's: the bare chunk step (the very task the lowering runs
per chunk, without Dask) in 1 process over all chunks against 2 processes over half each, started together.
Writes its tables into benchmarks/RESULTS.md between the "dask" markers (the rest of the file is run.py's).
``--profile`` writes nothing: per run it prints where the time goes, as measures that a loaded machine skews
less than wall time: the workers' process CPU time, and the task stream's compute and transfer time by kind
of task (chunk steps, combines, aggregates; Dask's own by its layer names).
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per worker, as Dask's workers get

import numpy as np  # noqa: E402

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


def fresh_copy(client, x):
    """``x`` copied under a new name and held on ``client``'s workers: Dask's keys are deterministic, so the same
    input would find its result still held from the run before."""
    import distributed
    fresh = client.persist(x.map_blocks(np.copy, name=f"input-{uuid.uuid4().hex}"))
    distributed.wait(fresh)
    return fresh


def timed(client, make, x) -> float:
    """The time to persist ``make(x)`` on ``client``'s cluster, on a fresh copy of ``x``."""
    import distributed
    fresh = fresh_copy(client, x)
    start = time.perf_counter()
    result = client.persist(make(fresh))
    distributed.wait(result)
    elapsed = time.perf_counter() - start
    del result, fresh
    return elapsed


def chunk_task(array) -> tuple:
    """The task gputrace's lowering of ``array`` runs on its input's first chunk: (function, *arguments), the
    chunk's key among them."""
    for key, task in dict(array.__dask_graph__()).items():
        if task_kind(key) == "chunk step":
            return task
    raise ValueError("no gputrace chunk step in the graph")


def bare_worker(conn, shape: tuple, rows: int, task: tuple, input_name: str) -> None:
    """A process that runs ``task`` on chunks of its own, as a Dask worker would, when told which."""
    func, *args = task
    chunks = [np.random.default_rng(i).standard_normal((min(rows, shape[0] - i), *shape[1:]), dtype=np.float32)
              for i in range(0, shape[0], rows)]

    def step(chunk):
        return func(*[chunk if isinstance(a, tuple) and a[:1] == (input_name,) else a for a in args])
    step(chunks[0]), step(chunks[-1])  # compiled before the clock starts, as on the workers
    conn.send(len(chunks))
    while (part := conn.recv()) is not None:
        start = time.perf_counter()
        for chunk in chunks[slice(*part)]:
            step(chunk)
        conn.send(time.perf_counter() - start)


class BareSteps:
    """Two processes that run a chunk step without Dask: the hardware's scaling from 1 process to 2."""

    def __init__(self, shape: tuple, rows: int, task: tuple, input_name: str):
        context = multiprocessing.get_context("spawn")  # not fork: the clients' threads live in this process
        self.pipes, self.processes = [], []
        for _ in range(2):
            ours, theirs = context.Pipe()
            process = context.Process(target=bare_worker, args=(theirs, shape, rows, task, input_name), daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)
        self.chunks = [pipe.recv() for pipe in self.pipes][0]

    def run(self, processes: int) -> float:
        """Wall time for all chunks: one process runs them all, or each of two half of them at once."""
        bounds = [0, self.chunks] if processes == 1 else [0, self.chunks // 2, self.chunks]
        for pipe, part in zip(self.pipes, zip(bounds, bounds[1:])):
            pipe.send(part)
        return max(pipe.recv() for pipe in self.pipes[:processes])

    def close(self) -> None:
        for pipe, process in zip(self.pipes, self.processes):
            pipe.send(None)
            process.join()


def spread(values: list, digits: int = 3, unit: str = "") -> str:
    """The median and, in brackets, the smallest and largest of ``values``."""
    return f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def task_kind(key) -> str:
    name = key[0] if isinstance(key, tuple) else key
    for kind in ("combine", "aggregate", "partial"):
        if kind in name:
            return kind
    return "chunk step" if name.startswith("gputrace-") else name.rsplit("-", 1)[0]


def profiled(client, make, x) -> str:
    """One run of ``make(x)``: the workers' CPU time and the task stream's time by kind of task and action."""
    import distributed
    fresh = fresh_copy(client, x)
    before = client.run(time.process_time)
    with distributed.get_task_stream(client) as stream:
        start = time.perf_counter()
        distributed.wait(client.persist(make(fresh)))
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
    import gputrace.dask
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tiles", action="store_true", help="chunk steps on blocks over 2 MiB run in tiles")
    parser.add_argument("--out-of-core", action="store_true",
                        help="also x.std() of 4 GiB (64 MiB chunks) on 2 workers limited to 1 GiB each")
    parser.add_argument("--profile", action="store_true", help="print where the time goes; write nothing")
    parser.add_argument("--programs", default=",".join(PROGRAMS))
    args = parser.parse_args()
    if args.tiles:
        gputrace.dask.TILE_ABOVE = 2 << 20  # decided where the graph is built: the tasks carry it
    programs = {name: PROGRAMS[name] for name in args.programs.split(",")}
    rows, scaling = [], []
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cluster = dict(threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR)  # two at once
    with distributed.LocalCluster(n_workers=1, **cluster) as one, distributed.Client(one) as one_client, \
            distributed.LocalCluster(n_workers=2, **cluster) as two, distributed.Client(two) as two_client:
        clients = {1: one_client, 2: two_client}
        for size in args.sizes.split(","):
            shape, rows_per_chunk = SIZES[size]
            lazy = da.random.default_rng(0).standard_normal(shape, chunks=(rows_per_chunk, -1), dtype=np.float32)
            inputs = {workers: client.persist(lazy) for workers, client in clients.items()}
            distributed.wait(list(inputs.values()))
            for name, fn in programs.items():
                traced = gputrace.trace(fn, lazy.blocks[0].compute(scheduler="threads"))
                for workers, client in clients.items():
                    timed(client, traced, inputs[workers])  # compile on the workers first
                if args.profile:
                    for workers, client in clients.items():
                        for label, make in (("gputrace", traced), ("Dask's own", fn)):
                            for _ in range(args.repeat):
                                print(f"{name} {size} {workers} worker(s), {label}: "
                                      f"{profiled(client, make, inputs[workers])}")
                    continue
                bare = BareSteps(shape, rows_per_chunk, chunk_task(traced(lazy)), lazy.name)
                ours, own, alone = {1: [], 2: []}, {1: [], 2: []}, {1: [], 2: []}
                for _ in range(args.repeat):  # 1 and 2 in turn: a noisy moment hits both
                    for workers, client in clients.items():
                        ours[workers].append(timed(client, traced, inputs[workers]))
                        own[workers].append(timed(client, fn, inputs[workers]))
                        alone[workers].append(bare.run(workers))
                bare.close()
                chunks = lazy.numblocks[0]
                for workers in clients:
                    rows.append((name, size, workers, ours[workers], own[workers],
                                 tasks(traced(lazy), "gputrace-") / chunks, (tasks(fn(lazy)) - tasks(lazy)) / chunks))
                    print(name, size, workers, spread(ours[workers]), spread(own[workers]), file=sys.stderr)
                ratios = [[a / b for a, b in zip(times[1], times[2])] for times in (ours, own, alone)]
                scaling.append((name, size, *ratios))
                print(name, size, "scaling", *(spread(r, 2, "x") for r in ratios), file=sys.stderr)
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
    median = statistics.median
    lines = [BEGIN, "## gputrace on Dask (CPU, numpy chunks)", "",
             f"{started}, {os.cpu_count()} cores, no GPU; load average before and after: {load:.1f}, "
             f"{os.getloadavg()[0]:.1f}. Wall time to persist the result on a LocalCluster of worker processes "
             f"(1 thread each), median (min-max) of {args.repeat} runs, 1 and 2 workers in turn; "
             f"{'chunk steps on blocks over 2 MiB in tiles (--tiles); ' if args.tiles else ''}"
             "tasks per chunk counted in the graph (Dask's own: every op's task, without the input's).", "",
             "| program | size | workers | gputrace s | Dask's own s | speed-up | gputrace tasks/chunk | "
             "Dask tasks/chunk |", "|---|---|---|---|---|---|---|---|"]
    for name, size, workers, ours, own, t_ours, t_own in rows:
        lines.append(f"| {name} | {size} | {workers} | {spread(ours)} | {spread(own)} | "
                     f"{median(own) / median(ours):.2f}x | {t_ours:.2f} | {t_own:.2f} |")
    lines += ["", "Scaling from 1 to 2 workers, median (min-max) of the runs' ratios. The bare chunk step is the "
              "lowering's own per-chunk task without Dask, in 1 process over all chunks against 2 processes over "
              "half each, started together: what two cores of this machine give (shared memory bandwidth). "
              "Kept: gputrace's scaling over the bare step's.", "",
              "| program | size | gputrace on Dask | Dask's own | bare chunk step | kept |",
              "|---|---|---|---|---|---|"]
    for name, size, ours, own, alone in scaling:
        lines.append(f"| {name} | {size} | {spread(ours, 2, 'x')} | {spread(own, 2, 'x')} | {spread(alone, 2, 'x')} "
                     f"| {median(ours) / median(alone):.0%} |")
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
