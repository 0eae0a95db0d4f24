"""The mutation check (tests/mutation.py): its mutants are well formed (default tier), and every one of them
is killed by a deterministic kernel test (slow tier: ``python -m pytest -q --slow -m slow``)."""
from __future__ import annotations

import ast

import pytest

from gputrace import ops
from tests import mutation


def test_every_mutant_edits_its_file_once_and_still_parses():
    for mutant in mutation.all_mutants():
        text = (mutation.ROOT / mutant.path).read_text()
        assert text.count(mutant.old) == 1, f"{mutant.name}: the text to edit is not in {mutant.path} once"
        if mutant.path.endswith(".py"):
            ast.parse(text.replace(mutant.old, mutant.new))


def test_every_op_and_reduction_has_mutants():
    names = [m.name for m in mutation.all_mutants()]
    rendered = [op.name for op in ops.OPS.values() if op.category == ops.ELEMENTWISE and op.cuda and op.name != "astype"]
    for name in rendered:
        assert any(n.startswith(f"{name} rendered as") or n == f"{name} with operands swapped" for n in names), name
    for name in ops.REDUCTIONS:
        assert any(n.startswith(f"{name}: identity") for n in names), name
        assert sum(n.startswith(f"{name}: ") or n.startswith(f"{name}/") or f"/{name}:" in n for n in names) >= 2, name


def test_partners_share_arity_and_loops():
    assert mutation.same_class("fmax", "maximum") and mutation.same_class("remainder", "fmod")
    assert not mutation.same_class("add", "subtract")  # subtract has no bool loop
    assert not mutation.same_class("exp", "add")        # another arity


@pytest.mark.slow
def test_every_mutant_is_killed():
    outcomes = mutation.run_all(mutation.all_mutants(), jobs=2, timeout=900, report=lambda line: None)
    text, unexplained = mutation.summary(outcomes)
    print(text)
    assert not unexplained, text
