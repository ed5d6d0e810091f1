"""Janus-Pro (DeepSeek) through transformers' native Janus classes, in text mode.

The prompt follows the original Janus conversation format, system text first:
``{system}\n\n<|User|>: <image_placeholder>\n{user}\n\n<|Assistant|>: ``. The trailing space is
what the template writes before a reply (``<|Assistant|>: 7``) though its generation prompt
stops at the colon; DeepSeek's tokenizer makes it a token of its own, so the level tokens are
read after it (found from the template, see ``reply_opening``). The converted Hub checkpoints
set ``use_default_system_prompt``, which would put Janus' generic assistant prompt before ours;
the scorer turns it off and writes the standard's system text in its place. Janus can also
generate images; ``generation_mode="text"`` makes the processor prepare an understanding prompt
(no image-start token appended), and the forward pass reads the text head.
"""

from __future__ import annotations

from typing import Any

from iqa_core.api import Standard
from iqa_plugins.scorers.mllm.chat import conversation
from iqa_plugins.scorers.mllm.params import ChatParams
from iqa_plugins.scorers.mllm.scorer import MLLMScorer


class JanusProScorer(MLLMScorer):
    """Janus-Pro (transformers' JanusForConditionalGeneration): level-token probabilities."""

    class Params(ChatParams):
        model: str = "deepseek-community/Janus-Pro-7B"

    def _load(self, source: str) -> tuple[Any, Any]:
        from transformers import JanusForConditionalGeneration, JanusProcessor

        processor = JanusProcessor.from_pretrained(source, **self.hub_kwargs())
        processor.use_default_system_prompt = False
        model = JanusForConditionalGeneration.from_pretrained(source, **self.hub_kwargs(), **self.model_kwargs())
        return model, processor

    def prompt(self, standard: Standard) -> str:
        key = standard.prompt_key()
        if key not in self._prompts:
            turn = self.opened_reply(conversation("", standard.user, "prepend"), standard)
            self._prompts[key] = f"{standard.system}\n\n{turn}" if standard.system else turn
        return self._prompts[key]

    def processor_kwargs(self) -> dict[str, Any]:
        return {"generation_mode": "text"}

    def fit(self, image: Any) -> Any:
        """The view resized so its long side is the model's input side before the processor.

        transformers' Janus image processor scales by ``int(side * 384 / long_side)``, which
        truncates to 383 for some aspect ratios (e.g. 307x135) and then fails the forward pass
        (529 image tokens instead of 576); a view whose long side already is 384 is not rescaled.
        """
        from PIL import Image

        image = super().fit(image)
        size = self.fit_size(image.size)
        return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)

    def fit_size(self, size: tuple[int, int]) -> tuple[int, int]:
        w, h = super().fit_size(size)
        side = int(self.processor.image_processor.size["height"])
        if max(w, h) == side:
            return w, h
        scale = side / max(w, h)
        return (side, max(1, round(h * scale))) if w >= h else (max(1, round(w * scale)), side)

    def image_tokens(self, size: tuple[int, int]) -> int:
        """Every view is padded to one square: the processor's fixed count (576 for Janus-Pro)."""
        return int(self.processor.num_image_tokens)

    def input_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """The view's size inside the square the model sees (long side 384 for Janus-Pro; the
        image processor then pads it square). None before ``load``."""
        if getattr(self, "processor", None) is None:
            return None
        w, h = self.fit_size(size)
        least = int(self.processor.image_processor.min_size)  # the processor's floor for the short side
        return max(w, least), max(h, least)
