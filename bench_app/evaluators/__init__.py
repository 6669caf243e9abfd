"""Evaluators: what scores a dataset against a running server, chosen by `_target_` in
conf/evaluator/*.yaml."""

from .base import Endpoint, EvaluationResult, EvaluationTask, Evaluator

__all__ = ["Endpoint", "EvaluationResult", "EvaluationTask", "Evaluator"]
