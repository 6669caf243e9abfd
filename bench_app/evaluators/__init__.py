"""Evaluators: what scores a dataset against a running server, chosen by `_target_` in
conf/evaluator/*.yaml."""

from bench_app.evaluators.base import Endpoint, EvaluationResult, EvaluationSession, EvaluationTask, Evaluator

__all__ = ["Endpoint", "EvaluationResult", "EvaluationSession", "EvaluationTask", "Evaluator"]
