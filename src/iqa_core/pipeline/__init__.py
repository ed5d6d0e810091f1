"""The scoring pipeline, one module per stage in data-flow order:

``read`` (decode ahead, within ``budget``) -> ``segment`` (masks, Algorithm 1, flush marks)
-> ``views`` (view keys, crops) -> ``batches`` (which views share a batch) -> ``score``
(prepare on the CPU, forward on the accelerator) -> ``finish`` (decode, aggregate,
ensemble, store). ``stream`` runs the stages at once;
``items`` holds what flows between them; ``core`` holds :class:`Pipeline`, the public API.
"""

from .core import Pipeline, load_recipe

__all__ = ["Pipeline", "load_recipe"]
