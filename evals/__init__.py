"""Eval suite: metrics, runner, reports, comparison."""
