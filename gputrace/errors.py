"""The exception and warning hierarchy of gputrace.

Every error gputrace raises on purpose derives from :class:`GputraceError`, and
from the matching built-in where one fits, so ``except TypeError`` still works.
"""
from __future__ import annotations


class GputraceError(Exception):
    """Base class of all gputrace errors."""


class UnsupportedOperationError(GputraceError, TypeError):
    """The tracer met a NumPy function, method, keyword or dtype it cannot record (complex, object, big-endian ...)."""


class SignatureError(GputraceError, TypeError):
    """Arguments that do not fit: not arrays, the wrong number of them, or another dtype or ndim than traced."""


class TracingError(GputraceError, RuntimeError):
    """Tracing could not produce a faithful graph (e.g. a list output under strict=True)."""


class TracingCheckError(GputraceError, AssertionError):
    """check_trace found a difference between traces, or between the trace and eager code."""


class GraphFormatError(GputraceError, ValueError):
    """A saved trace is corrupted, truncated, of another version, or not a gputrace file."""


class KernelCompileError(GputraceError, RuntimeError):
    """NVRTC or the host compiler rejected generated code; the message holds the log."""


class BackendUnavailableError(GputraceError, RuntimeError):
    """A backend cannot run here (no GPU, no NVRTC, no host compiler)."""


class DeviceMismatchError(GputraceError, ValueError):
    """Arrays from different devices were passed to one call."""


class TracerWarning(UserWarning):
    """A traced array became a Python value, so the trace may not generalise."""
