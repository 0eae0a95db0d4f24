"""Long fuzzing runs: ``python -m tests.fuzz --count 10000 --backends numpy,emulate``.

Programs are drawn in rounds of hypothesis runs (each round its own seed).
A failing program ends its round: hypothesis shrinks it, the shrunk program is
written as a reproducer, and the next round goes on. Progress, counts and a
summary are printed (how many outputs were checked exactly, within a bound, or left unchecked); the exit
status is 1 if anything disagreed or more than 5% of the outputs were unchecked.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from .differential import MAX_UNCHECKED, Checks, available_backends, run_program
from .generate import programs
from .program import evaluate
from .reproducer import program_id, reproducer_directory, write_reproducer


class ProgramDisagrees(AssertionError):
    """Raised inside a round so that hypothesis shrinks the program."""


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    programs: int = 0
    rejected: int = 0          # NumPy rejects the program; gputrace rejected it alike
    kernel_runs: int = 0       # programs run on a kernel backend (emulate, cuda)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (first mismatch, reproducer path)
    checks: Checks = field(default_factory=Checks)  # how the outputs were compared

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        rate = self.programs / max(self.elapsed, 1e-9)
        return (f"[{self.elapsed:7.1f} s] {self.programs} programs ({rate:.1f}/s), {self.rejected} rejected alike, "
                f"{self.kernel_runs} on kernel backends, {len(self.failures)} failing")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=None, help="programs to run (default: 1000 unless --seconds)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--backends", default="numpy,emulate",
                        help="comma-separated backends to compare with NumPy (cuda is skipped without a GPU)")
    parser.add_argument("--kernel-every", type=int, default=1, metavar="K",
                        help="run emulate/cuda on every K-th program only, numpy on all (default 1: every program)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round")
    parser.add_argument("--max-ops", type=int, default=40, help="operations per program at most")
    parser.add_argument("--round", type=int, default=100, help="programs per hypothesis round")
    parser.add_argument("--reproducers", default=None, help=f"directory for reproducers ({reproducer_directory()})")
    parser.add_argument("--no-shrink", action="store_true", help="write failing programs as found, unshrunk")
    arguments = parser.parse_args(argv)
    if arguments.count is None and arguments.seconds is None:
        arguments.count = 1000
    for name in ("count", "seconds", "kernel_every", "max_ops", "round"):
        value = getattr(arguments, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')}: expected a positive number, got {value}")
    return arguments


def run_round(arguments, tally: Tally, backends: tuple[str, ...], round_number: int) -> None:
    kernel_backends = tuple(b for b in backends if b != "numpy")
    reference_only = tuple(b for b in backends if b == "numpy")
    budget_left = lambda: ((arguments.count is None or tally.programs < arguments.count)
                           and (arguments.seconds is None or tally.elapsed < arguments.seconds))
    phases = [Phase.generate] if arguments.no_shrink else [Phase.generate, Phase.shrink]

    remaining = arguments.round if arguments.count is None else min(arguments.round, arguments.count - tally.programs)

    @hypothesis_seed(arguments.seed + round_number)
    @settings(max_examples=remaining, deadline=None, database=None, phases=phases,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(programs(max_ops=arguments.max_ops))
    def one_program(program):
        if not budget_left() and not getattr(one_program, "failing", False):
            return
        # chosen by the program, not by a counter: hypothesis's replays of a failure must run the same backends
        with_kernels = kernel_backends and int(program_id(program), 16) % arguments.kernel_every == 0
        chosen = backends if with_kernels else reference_only
        if not getattr(one_program, "failing", False):
            tally.programs += 1
            tally.kernel_runs += bool(with_kernels)
            tally.rejected += evaluate(program).error is not None
            if tally.programs % 50 == 0:
                print(tally.line(), flush=True)
        counting = not getattr(one_program, "failing", False)
        mismatches = run_program(program, chosen, tally.checks if counting else None)
        if mismatches:
            one_program.failing = True  # from now on hypothesis is shrinking: do not count
            path = write_reproducer(program, mismatches, chosen, name=f"fuzz_seed{arguments.seed + round_number}",
                                    directory=arguments.reproducers)
            one_program.last = (str(mismatches[0]), str(path))
            raise ProgramDisagrees("\n".join(map(str, mismatches)))

    try:
        one_program()
    except Exception as error:  # ProgramDisagrees, or hypothesis's FlakyFailure when a replay passed
        first, path = getattr(one_program, "last", (f"{type(error).__name__}: {str(error)[:300]}", "(none)"))
        shrunk = "shrunk" if isinstance(error, ProgramDisagrees) else f"not shrunk: {type(error).__name__}"
        tally.failures.append((first, path))
        print(f"FAILURE ({shrunk}): {first}\n  reproducer: {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    backends = available_backends([b.strip() for b in arguments.backends.split(",") if b.strip()])
    print(f"fuzzing gputrace against NumPy on {', '.join(backends)}: "
          f"{arguments.count or 'unlimited'} programs, {arguments.seconds or 'unlimited'} seconds, "
          f"seed {arguments.seed}", flush=True)
    tally = Tally()
    round_number = 0
    while (arguments.count is None or tally.programs < arguments.count) and \
            (arguments.seconds is None or tally.elapsed < arguments.seconds):
        run_round(arguments, tally, backends, round_number)
        round_number += 1
    print(tally.line())
    kernel_backends = ", ".join(b for b in backends if b != "numpy") or "no kernel backend"
    print(f"summary: {tally.programs} programs in {tally.elapsed:.0f} s, {tally.rejected} rejected by NumPy "
          f"and by gputrace alike, {tally.kernel_runs} also run on {kernel_backends}; {len(tally.failures)} failing")
    for first, path in tally.failures:
        print(f"  {first}\n    {path}")
    print(f"compared: {tally.checks.summary()}")
    too_loose = tally.checks.unchecked_share() > MAX_UNCHECKED
    if too_loose:
        print(f"FAILURE: more than {MAX_UNCHECKED:.0%} of the outputs were unchecked: this run says little")
    return 1 if tally.failures or too_loose else 0


if __name__ == "__main__":
    sys.exit(main())
