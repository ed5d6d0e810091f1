"""The ``mplug_owl3`` scorer: mPLUG-Owl3-7B-240728, native (no remote code), batched like the
other MLLM scorers.

Views are bucketed by prompt length before the processor runs: the length is the prompt's
tokens plus the cut's (a function of the view's grid, :meth:`Owl3Processor.image_tokens`), so
views of one grid share a forward pass without padding. The answer is read where the 240728
chat format writes the reply (right after ``<|im_start|>assistant\\n``), found from the format
itself as for the other chat models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from iqa_core.errors import IQAError
from iqa_plugins.scorers.mllm.params import MLLMParams
from iqa_plugins.scorers.mllm.scorer import MLLMScorer
from iqa_plugins.scorers.mplug_owl3.processing import Owl3Processor, chat_text, cut_grid

TRANSFORMERS = "5.25"
"""The oldest transformers the native model was tested on (its Qwen2 pieces fail under 5.0.0)."""
CHECKPOINT_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]
"""What a Hub snapshot needs: config, weights, tokenizer (no remote code is fetched)."""


class MPlugOwl3Params(MLLMParams):
    """The MLLM parameters; ``model`` is a Hub id or a local copy of the 240728 checkpoint."""

    model: str = "mPLUG/mPLUG-Owl3-7B-240728"
    answer_stem: str = Field(
        default="",
        description="text written after the assistant turn's opening, before the level label",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_remote_code(cls, data: Any) -> Any:
        if isinstance(data, dict) and "trust_remote_code" in data:
            raise ValueError(
                "trust_remote_code is not a parameter any more: mPLUG-Owl3 runs natively on "
                "transformers 5 and loads no code from the Hub; remove it"
            )
        return data


class MPlugOwl3Scorer(MLLMScorer):
    """mPLUG-Owl3-7B-240728 (native hyper-attention Qwen2 + SigLIP): level-token probabilities."""

    Params = MPlugOwl3Params
    requires = {
        "torch": "iqa[models]",
        f"transformers>={TRANSFORMERS}": f"transformers>={TRANSFORMERS}",  # its Qwen2 and SigLIP pieces
        "accelerate": "iqa[models]",
        "safetensors": "iqa[models]",
    }

    def _load(self, source: str) -> tuple[Any, Any]:
        from transformers import AutoTokenizer

        from iqa_plugins.scorers.mplug_owl3.checkpoint import build, load_weights
        from iqa_plugins.scorers.mplug_owl3.config import read_config

        folder = self.snapshot(source)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise IQAError(f"{folder}: no config.json (an mPLUG-Owl3-7B-240728 checkpoint holds one)")
        config = read_config(json.loads(config_file.read_text()), str(config_file))
        config.text._attn_implementation, config.vision._attn_implementation = self.attention()
        model = build(config)
        load_weights(model, folder, self.device, self.dtype)
        model.to(self.device)
        tokenizer = AutoTokenizer.from_pretrained(folder, config=config.text)  # not the mplugowl3 config
        return model, Owl3Processor(tokenizer, config.image_size)

    def snapshot(self, source: str) -> Path:
        """The checkpoint's directory: ``source`` itself, or its Hub snapshot (downloaded once)."""
        if Path(source).is_dir():
            return Path(source)
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, allow_patterns=CHECKPOINT_FILES, **self.hub_kwargs()))

    def attention(self) -> tuple[str, str]:
        """(language model, vision tower) attention: ``attn_implementation`` for both or per part
        ({text_config: ..., vision_config: ...}); SDPA by default (the original's own choice)."""
        chosen = self.params.attn_implementation or "sdpa"
        if isinstance(chosen, str):
            return chosen, chosen
        return chosen.get("text_config", "sdpa"), chosen.get("vision_config", "sdpa")

    def render(self, turns: list[dict[str, Any]], generation: bool) -> str:
        return chat_text(turns, generation)

    def image_tokens(self, size: tuple[int, int]) -> int:
        return self.processor.image_tokens(size)

    def input_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """The smallest size of the view's aspect ratio that still covers its grid's crops and
        cuts into the same grid (else the view's own size). None before ``load``."""
        processor = getattr(self, "processor", None)
        if processor is None:
            return None
        side = processor.image_size
        rows, cols = cut_grid(*size, side)
        scale = min(1.0, max(cols * side / size[0], rows * side / size[1], side / min(size)))
        scaled = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        return scaled if cut_grid(*scaled, side) == (rows, cols) else size
