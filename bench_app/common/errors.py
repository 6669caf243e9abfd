"""The error family of bench_app.

UserError: a mistake in the configuration or the command line, printed as one paragraph with no
traceback (exit 2). ComponentError: an engine, evaluator or resource that failed at run time; it
carries the reason and a log excerpt so that the dataset it hits is recorded as failed with both.
"""

from __future__ import annotations


class BenchAppError(Exception):
    """Base of every error bench_app raises on purpose."""


class UserError(BenchAppError):
    """A mistake in the configuration or the command line, explained to the user."""

    exit_code = 2


class ComponentError(BenchAppError):
    """A run-time failure of a component: `reason` goes into results, `log_tail` next to it."""

    def __init__(self, reason: str, log_tail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


class EngineError(ComponentError):
    """The inference server could not be started, became unhealthy, or could not be stopped."""


class EvaluationError(ComponentError):
    """The evaluator failed or its output did not verify; `samples` (a SamplesOutcome, if any was
    written) says what became of the records of what was answered."""

    samples = None


class LeaseError(ComponentError):
    """Devices, a CPU slot or a port that can never be had (or were not had in time)."""
