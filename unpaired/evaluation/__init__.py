"""Scores: what a metric plugin sees (:mod:`~unpaired.evaluation.metrics`), the evaluator
(:mod:`~unpaired.evaluation.evaluator`), its result, and evaluating runs or folders
(:mod:`~unpaired.evaluation.entry`)."""
