"""Debug logging by topic, like ``TORCH_LOGS``: ``GPUTRACE_LOG=graph,fusion python app.py``.

Each topic is a standard :mod:`logging` logger named ``gputrace.<topic>``:
``graph`` (the graph after every pass), ``fusion`` (fusion decisions),
``kernels`` (generated CUDA), ``cache`` (hits and rebuilds). ``all`` turns on
every topic. Applications that configure :mod:`logging` themselves can set
these loggers' levels directly instead.

>>> import gputrace.log
>>> gputrace.log.parse_topics("graph, cache")
['graph', 'cache']
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Iterable, Mapping, TextIO

TOPICS = ("graph", "fusion", "kernels", "cache")
ENV_VAR = "GPUTRACE_LOG"

_handler: logging.Handler | None = None


def parse_topics(text: str) -> list[str]:
    """The topics named in a comma-separated list; ``all`` means every topic."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if "all" in names:
        return list(TOPICS)
    unknown = [t for t in names if t not in TOPICS]
    if unknown:
        raise ValueError(f"unknown gputrace log topic{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                         f"expected a comma-separated list of {', '.join(TOPICS)} or all")
    return names


def enable(topics: Iterable[str] | str, level: int = logging.DEBUG, stream: TextIO | None = None) -> None:
    """Send the records of ``topics`` (``"graph,cache"`` or a list) at ``level`` and above to ``stream``.

    ``stream`` defaults to stderr; calling again changes the stream rather than adding a second handler.
    """
    names = parse_topics(topics if isinstance(topics, str) else ",".join(topics))
    global _handler
    parent = logging.getLogger("gputrace")
    # One handler on the parent logger: every topic logger reaches it, and enabling twice prints once.
    if _handler is not None:
        parent.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    parent.addHandler(_handler)
    for name in names:
        logging.getLogger(f"gputrace.{name}").setLevel(level)


def configure_from_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Enable the topics listed in ``$GPUTRACE_LOG``; returns them. A bad value warns instead of failing."""
    text = environ.get(ENV_VAR, "")
    if not text.strip():
        return []
    try:
        topics = parse_topics(text)
    except ValueError as exc:  # a typo in an environment variable must not stop the program
        warnings.warn(f"{ENV_VAR}: {exc}", stacklevel=2)
        return []
    enable(topics)
    return topics
