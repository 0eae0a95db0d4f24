"""One traced function called from 8 threads at once: right results on every backend, each thing built once.

The first calls race to create the Programs (one per signature), the executors and, for emulate and cuda,
the compiled kernels; later calls share them.
"""
import hashlib
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import gputrace
from gputrace.backends.build import BODY_ENTRY, kernel_body
from gputrace.backends import host_compiler, nvrtc

THREADS = 8
SHAPES = [(16, 33)] * 4 + [(5, 7)] * 4  # two signatures, four threads each
needs_compiler = pytest.mark.skipif(not host_compiler.host_compiler_info()["available"], reason="no host C++ compiler")


def at_once(work, count=THREADS):
    """``work(i)`` for i < count, on ``count`` threads released together; the results in order."""
    start = threading.Barrier(count)

    def job(i):
        start.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(job, range(count)))


def program_under_test():
    """A function with a constant no other test uses, so its kernels are in no cache yet; and its NumPy twin."""
    scale = np.float32(1 + uuid.uuid4().int % 10**6 / 10**7)

    def fn(x):
        return np.tanh(x * scale) + x.sum(axis=1, keepdims=True), (x - x.max(axis=1, keepdims=True)).astype(np.float64)

    return fn


@pytest.fixture
def counted(monkeypatch):
    """What the threads built: graphs per signature (Programs) and host-compiled kernel sources (by hash)."""
    builds = {"graphs": Counter(), "host": Counter()}
    real_build_graph = gputrace.TracedFunction._build_graph
    real_run_compiler = host_compiler._run_compiler

    def build_graph(self, arrays, input_types, param_types):
        builds["graphs"][input_types[0].shape] += 1
        time.sleep(0.02)  # widens the race: without the Program lock, every thread of a signature builds one
        return real_build_graph(self, arrays, input_types, param_types)

    def run_compiler(compiler, arguments, files):
        sources = [content for name, content in files.items() if name.endswith(".cu")]
        builds["host"][hashlib.sha256(sources[0]).hexdigest() if sources else "runtime"] += 1
        return real_run_compiler(compiler, arguments, files)

    monkeypatch.setattr(gputrace.TracedFunction, "_build_graph", build_graph)
    monkeypatch.setattr(host_compiler, "_run_compiler", run_compiler)
    return builds


def inputs_for_threads(xp=np):
    rng = np.random.default_rng(7)
    return [xp.asarray(rng.standard_normal(shape).astype(np.float32) * (i + 1)) for i, shape in enumerate(SHAPES)]


def check_threads(backend, counted, xp=np):
    fn = program_under_test()
    traced = gputrace.trace(fn, np.ones((2, 3), np.float32))
    inputs = inputs_for_threads(xp)

    def call(i):
        return [traced.run(inputs[i], backend=backend) for _ in range(2)]  # the first compiles, the second reuses

    results = at_once(call)
    for x, calls in zip(inputs, results):
        want = fn(np.asarray(x.get() if xp is not np else x))
        for got in calls:
            for g, w in zip(got, want):
                g = g.get() if xp is not np else g
                assert g.dtype == w.dtype
                np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-5)
    assert counted["graphs"] == {(16, 33): 1, (5, 7): 1}  # one Program per signature, built once
    programs = {traced.lower(x) for x in inputs}
    assert len(programs) == 2 and {id(p) for p in programs} == {id(p) for p in traced._programs.values()}
    return traced, programs


def test_numpy_backend_from_eight_threads(counted):
    check_threads("numpy", counted)


@needs_compiler
def test_emulate_backend_from_eight_threads_compiles_each_kernel_once(counted):
    traced, programs = check_threads("emulate", counted)
    kernels = {hashlib.sha256(host_compiler._host_source(kernel_body(k), [BODY_ENTRY]).encode()).hexdigest()
               for p in programs for k in p.kernels}
    built = {source: n for source, n in counted["host"].items() if source != "runtime"}
    assert built == {source: 1 for source in kernels}  # every kernel compiled, none twice


@pytest.mark.gpu
@pytest.mark.skipif(not nvrtc.gpu_available(), reason="needs a CUDA GPU")
def test_cuda_backend_from_eight_threads(counted, monkeypatch):
    import cupy
    compiled = Counter()
    real = nvrtc._run_nvrtc

    def run_nvrtc(module, source, *args):
        compiled[source] += 1
        return real(module, source, *args)

    monkeypatch.setattr(nvrtc, "_run_nvrtc", run_nvrtc)
    _, programs = check_threads("cuda", counted, cupy)
    assert set(compiled) == {kernel_body(k) for p in programs for k in p.kernels} and set(compiled.values()) == {1}


@needs_compiler
def test_check_trace_and_calls_at_once_keep_their_values_apart():
    """check_trace records every value of its run; calls running beside it must not mix theirs in."""
    fn = program_under_test()
    traced = gputrace.trace(fn, np.ones((2, 3), np.float32))
    inputs = [x for x in inputs_for_threads() if x.shape == SHAPES[0]]
    program = traced.lower(inputs[0])
    executor = program.executor("emulate")
    x_value, sum_value = program.graph.inputs[0], program.graph.outputs[0]

    def work(i):
        record = {} if i % 2 == 0 else None  # half record, half run plainly
        outputs = executor.run([inputs[i % len(inputs)]], traced.param, record=record)
        return record, outputs

    for i, (record, outputs) in enumerate(at_once(work)):
        x = inputs[i % len(inputs)]
        np.testing.assert_allclose(outputs[0], fn(x)[0], rtol=2e-6, atol=1e-5)
        if record is not None:
            assert record[x_value] is x  # its own input, not a neighbour's
            np.testing.assert_array_equal(record[sum_value], outputs[0])
    reports = at_once(lambda i: gputrace.check_trace(traced, (inputs[i % len(inputs)],)), count=4)
    assert all(r.ok for r in reports)
