"""Evaluation: a vectorised ranking evaluator and the MLR single-shot protocol."""
