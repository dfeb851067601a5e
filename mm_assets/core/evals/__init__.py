"""Evaluation results: readers of the harnesses' results files (formats), recording them
against a mixture's content digest (record), and the mixtures x benchmarks comparison
(compare)."""
