"""Every bad input that issue 5 lists, answered clearly: one test each, on the error's type and on its message.

The type is a GputraceError that is also the matching built-in (TypeError, ValueError, RuntimeError); the
message names the argument or op, what was expected and what came. Inputs that must work (read-only and
zero-size arrays) are checked on the numpy and emulate backends; sizes beyond 2**31 elements on paper: the
kernel is rendered, and compiled by NVRTC, for a type that size, without allocating it.
"""
import inspect
import re
import uuid
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import gputrace
from gputrace.backends import host_compiler, nvrtc

HERE = "test_bad_inputs.py"
BACKENDS = ["numpy", "emulate"]


def line_of(fn, marker):
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if marker in text)


def raises(cls, builtin, match):
    """pytest.raises for a gputrace error that must also be the built-in ``builtin``."""
    assert issubclass(cls, gputrace.GputraceError) and issubclass(cls, builtin)
    return pytest.raises(cls, match=match)


def scale_and_shift(x, y):
    return x * y + 1


F32 = np.ones((2, 3), np.float32)


@pytest.fixture
def traced():
    return gputrace.trace(scale_and_shift, (F32, F32))


# ----------------------------------------------------------------------------- signatures at call time


@pytest.mark.parametrize("count", [0, 1, 3])
def test_wrong_arity(traced, count):
    with raises(gputrace.SignatureError, TypeError,
                rf"scale_and_shift\(\) takes 2 array arguments \(x, y\) but {count} were given"):
        traced(*[F32] * count)


def test_wrong_dtype(traced):
    with raises(gputrace.SignatureError, TypeError,
                r"argument 'y' \(position 1\): expected dtype float32 as traced, got float64"):
        traced(F32, F32.astype(np.float64))


def test_wrong_ndim(traced):
    with raises(gputrace.SignatureError, TypeError,
                r"argument 'x' \(position 0\): expected a 2-d array as traced, got 1-d with shape \(6,\)"):
        traced(F32.ravel(), F32)


# ----------------------------------------------------------------------------- devices


class FakeCupyArray:
    """Looks like a cupy.ndarray on GPU ``device`` to gputrace (real ones cannot be made without a GPU)."""

    __module__ = "cupy._core.core"

    def __init__(self, array, device):
        self.dtype, self.shape, self.strides, self.ndim = array.dtype, array.shape, array.strides, array.ndim
        self.device = SimpleNamespace(id=device)


@pytest.mark.parametrize("x, y, devices", [
    (F32, FakeCupyArray(F32, 0), "cpu, cuda:0"),
    (FakeCupyArray(F32, 1), FakeCupyArray(F32, 0), "cuda:0, cuda:1"),
], ids=["host-and-gpu", "two-gpus"])
def test_arrays_from_two_devices_in_one_call(traced, x, y, devices):
    with raises(gputrace.DeviceMismatchError, ValueError,
                rf"scale_and_shift\(\): arrays from different devices in one call: {devices}; "
                "move them to one device first"):
        traced(x, y)


@pytest.mark.skipif(nvrtc.gpu_available(), reason="checks the machine without a GPU")
def test_a_cupy_array_or_the_cuda_backend_without_a_gpu(traced):
    expected = "the cuda backend needs a CUDA GPU, and none is available here; use backend='emulate'"
    with raises(gputrace.BackendUnavailableError, RuntimeError, expected):
        traced(FakeCupyArray(F32, 0), FakeCupyArray(F32, 0))
    with raises(gputrace.BackendUnavailableError, RuntimeError, expected):
        traced.run(F32, F32, backend="cuda")


# ----------------------------------------------------------------------------- what the tracer cannot record


def test_unsupported_numpy_function():
    def kron(x):
        return np.kron(x, x)  # kron

    with raises(gputrace.UnsupportedOperationError, TypeError,
                rf"the NumPy function np.kron is not supported by gputrace at .*{HERE}:{line_of(kron, '# kron')}"):
        gputrace.trace(kron, F32)


@pytest.mark.parametrize("fn, message", [
    (lambda x: np.add(x, 1, out=x), r"np.add\(..., out=...\) .*compute a new array instead"),
    (lambda x: np.exp(x, where=x > 0), r"np.exp\(..., where=...\) .*select with np.where\(condition, result, other\)"),
    (lambda x: np.log(x, order="F"), r"np.log\(..., order=...\) .*traced results are always C-contiguous"),
    (lambda x: np.exp(x, dtype=np.float64), r"np.exp\(..., dtype=...\) .*convert with .astype\(dtype\)"),
    (lambda x: x.reshape(6, order="F"), r"reshape\(order='F'\) .*only order='C' is traced"),
    (lambda x: x.astype(np.float64, order="F"), r"astype\(order='F'\) .*only order='K' or 'A' or 'C' is traced"),
    (lambda x: x.copy(order="F"), r"copy\(order='F'\) .*only order='K' or 'A' or 'C' is traced"),
    (lambda x: np.copy(x, order="F"), r"copy\(order='F'\) .*traced results are always C-contiguous"),
    (lambda x: np.sum(x, where=x > 0), r"the keyword where= of np.sum"),
    (lambda x: np.sum(x, initial=np.ones(1)), r"np.sum\(..., initial=ndarray\) .*give a real number"),
    (lambda x: x.max(initial=np.nan), r"np.max\(..., initial=nan\) .*the result would be NaN everywhere"),
    (lambda x: np.min(x, initial=np.zeros(1)), r"np.min\(..., initial=ndarray\) .*give a real number"),
    (lambda x: x.var(mean=x.mean()), r"the keyword mean= of np.var"),
    (lambda x: np.linalg.norm(x, 2), r"np.linalg.norm\(..., ord=2\) over two axes .*computed from singular values"),
    (lambda x: np.linalg.norm(x[None], "nuc", axis=(2, 0)), r"np.linalg.norm\(..., ord='nuc'\) over two axes"),
    (lambda x: np.outer(x, x, out=np.empty((6, 6))), r"the keyword out= of np.outer"),
    (lambda x: np.einsum(x, [0, 1], [1]), r"np.einsum with subscripts as lists of operand axes .*as a string"),
    (lambda x: np.einsum("ij->i", x, dtype=np.float64), r"the keyword dtype= of np.einsum"),
], ids=["out", "where", "order", "dtype", "reshape-order", "astype-order", "copy-order", "np-copy-order", "sum-where",
        "sum-initial", "max-initial-nan", "min-initial-array", "var-mean", "norm-2", "norm-nuc", "outer-out",
        "einsum-sublists", "einsum-dtype"])
def test_unsupported_keywords(fn, message):
    with raises(gputrace.UnsupportedOperationError, TypeError, message) as info:
        gputrace.trace(fn, F32)
    assert f"is not supported by gputrace at {__file__}:" in str(info.value)


@pytest.mark.parametrize("fn, error, message", [
    (lambda x: np.max(x, 1, None, True, 0.0, True, 7), TypeError,
     r"^max\(\) takes from 1 to 6 positional arguments but 7 were given$"),
    (lambda x: np.sum(x, 1, axis=0), TypeError, r"^sum\(\) got multiple values for argument 'axis'$"),
    (lambda x: np.var(x, ddof=1, correction=1), ValueError, r"^ddof and correction can't be provided simultaneously\.$"),
    (lambda x: np.linalg.norm(x, "fro", axis=1), ValueError, r"^Invalid norm order 'fro' for vectors$"),
    (lambda x: np.linalg.norm(x, "max", axis=(0, 1)), ValueError, r"^Invalid norm order for matrices\.$"),
    (lambda x: np.linalg.norm(x[None], 1), ValueError, r"^Improper number of dimensions to norm\.$"),
    (lambda x: np.linalg.norm(x, axis=(1, -1)), ValueError, r"^Duplicate axes given\.$"),
    (lambda x: np.linalg.norm(x, axis=[1]), TypeError, r"^'axis' must be None, an integer or a tuple of integers$"),
    (lambda x: np.einsum("ij,jk->ik", x, x), ValueError, r"^operands could not be broadcast together"),
    (lambda x: np.einsum("ij,jk->iz", x, x.T), ValueError, r"output subscript 'z' which never appeared in an input"),
    (lambda x: np.einsum("ij", x, x), ValueError, r"operands provided to einstein sum function than specified"),
    (lambda x: np.tensordot(x, x, axes=(0, 1)), ValueError, r"^shape-mismatch for sum$"),
    (lambda x: np.inner(x, x.T), ValueError, r"^shapes .* not aligned"),
    (lambda x: np.vdot(x, x[0]), ValueError, r"^cannot reshape array of size 3 into shape \(6,\)$"),
    (lambda x: np.diagonal(x[0]), ValueError, r"^diag requires an array of at least two dimensions$"),
    (lambda x: np.trace(x, 0, 1, -1), ValueError, r"^axis1 and axis2 cannot be the same$"),
    (lambda x: np.diff(x, -1), ValueError, r"^order must be non-negative but got -1$"),
    (lambda x: np.diff(x[0, 0]), ValueError, r"^diff requires input that is at least one dimensional$"),
    (lambda x: np.nanmean(x, dtype=np.int32), TypeError, r"^If a is inexact, then dtype must be inexact$"),
], ids=["too-many", "twice", "ddof-and-correction", "norm-vector-order", "norm-matrix-order", "norm-ndim",
        "norm-duplicate-axes", "norm-axis-type", "einsum-sizes", "einsum-output-label", "einsum-operands",
        "tensordot-sizes", "inner-sizes", "vdot-sizes", "diagonal-1d", "trace-axes", "diff-order", "diff-0d",
        "nanmean-dtype"])
def test_arguments_numpy_refuses_are_refused_as_numpy_does(fn, error, message):
    with pytest.raises(error, match=message):
        fn(F32)
    with pytest.raises(error, match=message):
        gputrace.trace(fn, F32)


def test_inplace_arithmetic_and_assignment_on_an_input_are_written_back_on_every_backend():
    def increment(x):
        x += 1  # in place
        x[0] = 1  # assigns
        return x * 2

    traced = gputrace.trace(increment, F32.copy())
    for backend in BACKENDS:
        x, eager = (np.arange(6, dtype=np.float32).reshape(2, 3) for _ in range(2))
        np.testing.assert_array_equal(traced.run(x, backend=backend), increment(eager))
        np.testing.assert_array_equal(x, eager)  # the caller's array, as eager NumPy leaves it


def branch_on_sign(x):
    if x.sum() > 0:  # branch
        return np.exp(x)
    return np.sin(x)


def test_python_control_flow_on_traced_values_warns_and_fails_the_check():
    line = line_of(branch_on_sign, "# branch")
    with pytest.warns(gputrace.TracerWarning, match=rf"Converting a traced array to a Python bool at .*{HERE}:{line}:"
                                                    r".*data-dependent control flow is not captured") as caught:
        traced = gputrace.trace(branch_on_sign, F32)
    assert len(caught) == 1, "once: the check's retrace repeats no warning"
    np.testing.assert_array_equal(traced(F32), np.exp(F32))  # the branch taken while tracing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gputrace.TracerWarning)
        with raises(gputrace.TracingCheckError, AssertionError,
                    "the graphs differ: this usually means data-dependent control flow"):
            gputrace.trace(branch_on_sign, F32, check_inputs=[(-F32,)])


# ----------------------------------------------------------------------------- inputs that are not arrays gputrace takes


@pytest.mark.parametrize("bad, shown", [([1.0, 2.0], "a list of 2"), (3, r"int \(3\)"), (2.5, "a Python float"),
                                        (None, r"NoneType \(None\)")], ids=["list", "int", "float", "None"])
def test_non_array_inputs(traced, bad, shown):
    """Where an array was traced, a call must pass an array (a static value or a float is another trace's)."""
    with raises(gputrace.SignatureError, TypeError,
                rf"argument 'y' \(position 1\): expected a numpy.ndarray or cupy.ndarray as traced, got {shown}; "
                rf"the arguments must nest as they did when traced"):
        traced(F32, bad)
    with raises(gputrace.SignatureError, TypeError, "example_inputs: expected an array or a tuple of arguments, "
                                                    "got list"):
        gputrace.trace(scale_and_shift, [F32, F32])


@pytest.mark.parametrize("array, dtype", [
    (np.array([object()]), "object"), (np.array(["a", "b"]), "<U1"), (np.ones(2, np.complex64), "complex64"),
    (np.zeros(2, [("a", "<f4"), ("b", "<i4")]), r"\[\('a', '<f4'\), \('b', '<i4'\)\]"),
], ids=["object", "string", "complex", "structured"])
def test_unsupported_dtypes(traced, array, dtype):
    message = rf"dtype {dtype} is not supported; gputrace supports bool, int8, .*float64"
    with raises(gputrace.UnsupportedOperationError, TypeError, rf"argument 'x' \(position 0\): {message}"):
        traced(array, array)
    with raises(gputrace.UnsupportedOperationError, TypeError, rf"example_inputs\[0\]: {message}"):
        gputrace.trace(lambda x: x, (array,))


@pytest.mark.parametrize("array, message", [
    (np.array([object()]), r"dtype object is not supported; gputrace supports bool, int8, "),
    (np.array(["a", "b"]), r"dtype <U1 is not supported; gputrace supports bool, int8, "),
    (F32.astype(">f4"), r"big-endian arrays \(>f4\) are not supported; convert with x.astype"),
], ids=["object", "string", "big-endian"])
def test_a_single_example_array_is_checked_as_the_tuple_form_is(array, message):
    for fn in (lambda x: x, lambda a: a * 2):
        with raises(gputrace.UnsupportedOperationError, TypeError, rf"example_inputs\[0\]: {message}"):
            gputrace.trace(fn, array)


@pytest.mark.parametrize("make", [np.asmatrix, lambda x: np.ma.masked_array(x, mask=x > 2)], ids=["matrix", "masked"])
def test_ndarray_subclasses_are_refused_naming_the_argument(traced, make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix is deprecated, but still made
        subclass = make(F32)
    name = type(subclass).__name__
    with raises(gputrace.SignatureError, TypeError,
                rf"example_inputs\[1\]: expected a numpy.ndarray or cupy.ndarray, got the ndarray subclass {name}"):
        gputrace.trace(scale_and_shift, (F32, subclass))  # np.matrix: x * y would be a matrix product
    with raises(gputrace.SignatureError, TypeError,
                rf"example_inputs\[0\]: expected a numpy.ndarray or cupy.ndarray, got the ndarray subclass {name}"):
        gputrace.trace(lambda x: x * 2, subclass)
    with raises(gputrace.SignatureError, TypeError,
                rf"argument 'y' \(position 1\): expected a numpy.ndarray or cupy.ndarray, "
                rf"got the ndarray subclass {name}"):
        traced(F32, subclass)
    with raises(gputrace.UnsupportedOperationError, TypeError, rf"a captured array of the ndarray subclass {name}"):
        gputrace.trace(lambda x: x * subclass, F32)


def test_memory_mapped_arrays_work(traced, tmp_path):
    mapped = np.memmap(tmp_path / "x.bin", dtype=np.float32, mode="w+", shape=F32.shape)
    mapped[:] = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(traced(mapped, F32), mapped * F32 + 1)
    np.testing.assert_array_equal(gputrace.trace(scale_and_shift, (mapped, mapped))(mapped, F32), mapped * F32 + 1)


def test_big_endian_arrays(traced):
    big = F32.astype(">f4")
    with raises(gputrace.UnsupportedOperationError, TypeError,
                r"argument 'y' \(position 1\): big-endian arrays \(>f4\) are not supported; "
                r"convert with x.astype\(x.dtype.newbyteorder\('='\)\)"):
        traced(F32, big)
    fixed = big.astype(big.dtype.newbyteorder("="))  # the conversion the message proposes works
    np.testing.assert_array_equal(traced(F32, fixed), F32 * fixed + 1)


# ----------------------------------------------------------------------------- inputs that must work


def test_read_only_arrays_work():
    weights = np.arange(3, dtype=np.float32)
    weights.flags.writeable = False
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    x.flags.writeable = False
    traced = gputrace.trace(lambda x: np.tanh(x * weights).sum(axis=1), x)  # read-only example and capture
    for backend in BACKENDS:
        np.testing.assert_allclose(traced.run(x, backend=backend), np.tanh(x * weights).sum(axis=1), rtol=1e-6)
    result = traced(x)
    result[0] = 5  # the result is the caller's own, writable array
    assert not x.flags.writeable and np.array_equal(x, np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_size_arrays_work(backend):
    traced = gputrace.trace(lambda x: (np.tanh(x) + 1, np.tanh(x).sum(axis=0)), np.ones((2, 3), np.float32))
    empty = np.ones((0, 3), np.float32)
    mapped, summed = traced.run(empty, backend=backend)
    assert mapped.shape == (0, 3) and mapped.dtype == np.float32
    np.testing.assert_array_equal(summed, np.zeros(3, np.float32))
    biggest = gputrace.trace(lambda x: x.max(), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="zero-size array to reduction operation maximum which has no identity"):
        biggest.run(np.ones(0, np.float32), backend=backend)  # NumPy's error, as eager code gets it


# ----------------------------------------------------------------------------- sizes beyond 2**31 elements


def huge(shape, strides=None):
    """A float32 array of ``shape`` that allocates one element: every index reads it (or ``strides`` apart, unread)."""
    one = np.ones(1, np.float32)
    return np.lib.stride_tricks.as_strided(one, shape, strides or (0,) * len(shape), writeable=False)


def index_type(kernel) -> str:
    """The C++ type the kernel indexes with (generated kernels declare it once as ``index_t``)."""
    [declared] = re.findall(r"typedef (int|long long) index_t;", kernel.source)
    return declared


# just below 2**31 a grid-stride loop's last step would pass INT_MAX: 64 bits there too
@pytest.mark.parametrize("elements, index", [(2**30, "int"), (2**31 - 2, "long long"), (2**31 + 5, "long long")])
def test_elementwise_kernels_index_with_64_bits_beyond_2_31_elements(elements, index):
    traced = gputrace.trace(lambda x: np.exp(x) * 2, np.ones(3, np.float32))
    [kernel] = traced.lower(huge((elements,))).kernels
    assert index_type(kernel) == index and kernel.elements == elements
    assert kernel.grid(10**6) == 10**6  # the launch covers the elements with a grid-stride loop


def test_reduction_kernels_index_with_64_bits_beyond_2_31_elements():
    traced = gputrace.trace(lambda x: x.sum(axis=1), np.ones((2, 3), np.float32))
    assert index_type(traced.lower(huge((3, 2**31))).kernels[0]) == "long long"  # 2**31 columns
    assert index_type(traced.lower(huge((2**31, 3))).kernels[0]) == "long long"  # 2**31 rows
    assert index_type(traced.lower(huge((3, 2**20))).kernels[0]) == "int"


def test_a_reduction_adds_the_row_offset_and_the_offset_in_the_row():
    """Each alone fits in 32 bits (3 * 2**29), the element at [1, 1] does not (3 * 2**30)."""
    traced = gputrace.trace(lambda x: x.sum(axis=1), np.ones((2, 2), np.float32))
    [kernel] = traced.lower(huge((2, 2), strides=(4 * 3 * 2**29, 4 * 3 * 2**29))).kernels
    assert index_type(kernel) == "long long"


def test_few_elements_far_apart_also_index_with_64_bits():
    """Six elements, but the second row starts 2**31 elements after the first: offsets need 64 bits."""
    traced = gputrace.trace(lambda x: x + 1, np.ones((2, 3), np.float32))
    [kernel] = traced.lower(huge((2, 3), strides=(4 * 2**31, 4))).kernels
    assert index_type(kernel) == "long long" and kernel.elements == 6


@pytest.mark.skipif(not nvrtc.nvrtc_available(), reason="NVRTC (cupy) is not available")
def test_the_64_bit_kernel_compiles_to_64_bit_loop_bounds():
    traced = gputrace.trace(lambda x: np.exp(x) * 2, np.ones(3, np.float32))
    for elements, bits in [(2**31 + 5, "s64"), (1000, "s32")]:
        [kernel] = traced.lower(huge((elements,))).kernels
        compares = set(re.findall(r"setp\.(?:lt|ge)\.[su]\d\d", kernel.ptx()))  # the grid-stride loop's bound checks
        assert {f"setp.lt.{bits}", f"setp.ge.{bits}"} <= compares
        if bits == "s32":
            assert not {"setp.lt.s64", "setp.ge.s64"} & compares


# ----------------------------------------------------------------------------- compilers missing or failing


@pytest.fixture
def cold_nvrtc(tmp_path, monkeypatch):
    """NVRTC with nothing cached: every kernel really reaches compileProgram."""
    if not nvrtc.nvrtc_available():
        pytest.skip("NVRTC (cupy) is not available")
    nvrtc.cuda_include_dirs()
    nvrtc._version_options()  # probed before the test breaks NVRTC
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(nvrtc.compiled_cache, "memory", {})
    from cupy.cuda import nvrtc as cupy_nvrtc
    return cupy_nvrtc


def test_nvrtc_missing(cold_nvrtc, monkeypatch):
    def no_library():
        raise RuntimeError("libnvrtc.so.13: cannot open shared object file")

    monkeypatch.setattr(cold_nvrtc, "getVersion", no_library)
    [kernel] = gputrace.trace(lambda x: np.exp(x), F32).kernels
    with raises(gputrace.BackendUnavailableError, RuntimeError,
                r"NVRTC is not available \(RuntimeError: libnvrtc.so.13: cannot open shared object file\); "
                r"install the CUDA extra: pip install gputrace\[cuda13\]"):
        kernel.ptx()


def test_nvrtc_failing(cold_nvrtc, monkeypatch):
    [kernel] = gputrace.trace(lambda x: np.exp(x), F32).kernels
    log = f"{kernel.name}.cu(12): error: identifier \"gt_exp\" is undefined\n1 error detected"

    def fail(program, options):
        raise cold_nvrtc.NVRTCError(6)  # NVRTC_ERROR_COMPILATION

    monkeypatch.setattr(cold_nvrtc, "compileProgram", fail)
    monkeypatch.setattr(cold_nvrtc, "getProgramLog", lambda program: log)
    with raises(gputrace.KernelCompileError, RuntimeError, rf"NVRTC could not compile {kernel.name}.cu:\n") as info:
        kernel.ptx()
    message = str(info.value)
    assert 'identifier "gt_exp" is undefined' in message
    assert f"   12 | {kernel.source.splitlines()[11]}" in message  # the failing line, numbered, in context


def unique_constant():
    """A constant no other test uses: its kernel is in no cache, so the compiler really runs."""
    return 1 + uuid.uuid4().int % 10**6 / 10**7


def test_host_compiler_missing(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    traced = gputrace.trace(lambda x: np.exp(x) * 3, F32)
    with raises(gputrace.BackendUnavailableError, RuntimeError,
                r"the emulate backend needs a C\+\+20 compiler and found none \(CXX='/nonexistent/g\+\+'\); "
                r"install g\+\+ \(apt install g\+\+\) or point CXX at one"):
        traced.run(F32, backend="emulate")
    np.testing.assert_array_equal(traced.run(F32, backend="numpy"), np.exp(F32) * 3)  # numpy needs no compiler


def test_host_compiler_failing(tmp_path, monkeypatch):
    """A compiler that builds the runtime (it is g++) but fails on the generated kernels."""
    if not host_compiler.host_compiler_info()["available"]:
        pytest.skip("no host C++ compiler")
    real = host_compiler.host_compiler().command[0]
    script = tmp_path / "failing-g++"
    script.write_text(f'#!/bin/sh\ncase "$*" in *gt_kernel.cu*) echo "$*: error: out of memory" >&2; exit 1;; esac\n'
                      f'exec {real} "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("CXX", str(script))
    scale = unique_constant()
    traced = gputrace.trace(lambda x: np.exp(x) * scale, F32)
    [kernel] = traced.kernels
    with raises(gputrace.KernelCompileError, RuntimeError,
                rf"failing-g\+\+ could not build the emulated kernels \({kernel.name}\):\n.*error: out of memory"):
        traced.run(F32, backend="emulate")
