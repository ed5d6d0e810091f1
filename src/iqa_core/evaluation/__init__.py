"""Evaluation against human scores, in the order ``iqa eval`` runs it:

``datasets`` (the paper's dataset layouts -> images and MOS) -> ``evaluate`` (score each
dataset with each recipe, through the pipeline) -> ``metrics`` (SRCC/PLCC, bounds) ->
``figures`` and ``report`` (plots, results.json / Markdown).
"""
