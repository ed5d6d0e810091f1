"""mPLUG-Owl3-7B-240728 as a native scorer on transformers 5 (no remote code).

- :mod:`.config`: the checkpoint's config.json as Qwen2 + SigLIP configs;
- :mod:`.modeling`: the hyper-attention decoder, the vision tower and projector;
- :mod:`.checkpoint`: the Hub checkpoint's names on the native model, and loading;
- :mod:`.processing`: the processor (chat text, cut into crops, ``media_offset``);
- :mod:`.scorer`: the ``mplug_owl3`` scorer.

Only :mod:`.scorer` is imported here: torch and transformers load when a model does.
"""

from iqa_plugins.scorers.mplug_owl3.scorer import MPlugOwl3Scorer

__all__ = ["MPlugOwl3Scorer"]
