"""``from iqa_core.engine import Pipeline, load_recipe`` keeps working: the pipeline lives in
:mod:`iqa_core.pipeline`, one module per stage."""

from .pipeline import Pipeline, load_recipe

__all__ = ["Pipeline", "load_recipe"]
