"""GPUTRACE_LOG: debug logging switched on per topic."""
import io
import logging

import numpy as np
import pytest

import gputrace
from gputrace import log


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
