"""GPUTRACE_LOG: debug logging switched on per topic."""
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gputrace
from gputrace import log

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_loggers():
    loggers = [logging.getLogger("gputrace")] + [logging.getLogger(f"gputrace.{t}") for t in log.TOPICS]
    saved = [(lg, lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, level, handlers in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers


def test_topics_parse_from_a_comma_separated_list():
    assert log.parse_topics("graph, cache") == ["graph", "cache"]
    assert log.parse_topics("all") == list(log.TOPICS)
    assert log.parse_topics(" ") == []


def test_an_unknown_topic_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown gputrace log topic grpah; expected a comma-separated list of "
                                         "graph, fusion, kernels, cache or all"):
        log.parse_topics("grpah")


def test_the_graph_topic_prints_the_graph_after_each_pass():
    stream = io.StringIO()
    log.enable("graph", stream=stream)
    log.enable(["graph"], stream=stream)  # enabling again must not print twice
    gputrace.trace(gputrace.nn.Linear(4, 2, seed=0), np.ones((3, 4), np.float32))  # freezes the module
    text = stream.getvalue()
    assert "[gputrace.graph] after freeze:\ngraph(" in text and "np::matmul" in text
    first = text.split("[gputrace.graph] ")[1]
    assert text.count(first) == 1
    assert logging.getLogger("gputrace.cache").level == logging.NOTSET  # other topics stay off


def test_configure_from_env_enables_the_listed_topics():
    assert log.configure_from_env({"GPUTRACE_LOG": "cache,kernels"}) == ["cache", "kernels"]
    assert logging.getLogger("gputrace.cache").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("gputrace.kernels").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("gputrace.graph").isEnabledFor(logging.DEBUG)
    assert log.configure_from_env({}) == []


def test_a_typo_in_the_environment_warns_instead_of_failing():
    with pytest.warns(UserWarning, match="GPUTRACE_LOG: unknown gputrace log topic kernals"):
        assert log.configure_from_env({"GPUTRACE_LOG": "kernals"}) == []


def test_the_fusion_topic_says_what_joined_which_group_and_what_stayed_out():
    stream = io.StringIO()
    log.enable("fusion", stream=stream)
    x, w = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    gputrace.trace(lambda x, w: np.exp(np.tanh(x) @ w).sum(axis=1), (x, w)).lower(x, w)
    lines = stream.getvalue().splitlines()
    assert "[gputrace.fusion] fused_0: np::tanh over shape (3, 4)" in lines
    assert "[gputrace.fusion] fused_1: np::exp, np::sum over shape (3, 2), reducing axes (1,)" in lines
    assert "[gputrace.fusion] not fused (views, library calls, unsupported dtypes): np::matmul -> [%2]" in lines
    assert "[gputrace.fusion] after fusion:" in lines


def test_the_cache_topic_reports_misses_and_hits(tmp_path):
    from gputrace.cache import DiskCache
    stream = io.StringIO()
    log.enable("cache", stream=stream)
    cache = DiskCache("demo", root=tmp_path)
    assert cache.get_or_build("k1", lambda: b"built") == b"built"
    assert cache.get_or_build("k1", lambda: b"not called") == b"built"
    assert stream.getvalue().splitlines() == ["[gputrace.cache] cache miss demo/k1: building",
                                              "[gputrace.cache] cache hit demo/k1"]


def test_gputrace_log_is_read_when_gputrace_is_imported(tmp_path):
    program = ("import numpy as np, gputrace\n"
               "x = np.ones(4, np.float32)\n"
               "gputrace.trace(lambda x: np.tanh(x) * 2, x).kernels\n")
    env = dict(os.environ, GPUTRACE_LOG="fusion,kernels", GPUTRACE_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[gputrace.fusion] fused_0: np::tanh, np::multiply over shape (4,)\n" in done.stderr
    assert "[gputrace.kernels] rendered gt_fused_0_tanh_multiply: 4 elements, block " in done.stderr
    assert 'extern "C" __global__ void gt_fused_0_tanh_multiply(' in done.stderr
    assert "[gputrace.graph]" not in done.stderr and "[gputrace.cache]" not in done.stderr
