"""Any transformers image-text-to-text model with a chat template, as a level scorer.

Qwen2-VL / Qwen2.5-VL / Qwen3-VL, LLaVA, Idefics3, Gemma 3 and the like load through
``AutoModelForImageTextToText`` + ``AutoProcessor``; the prompt is built with the model's own
chat template, so each family sees the format it was trained on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from iqa_core.api import Standard
from iqa_core.errors import IQAError
from iqa_plugins.scorers.mllm.chat import SystemRole, template_accepts_system
from iqa_plugins.scorers.mllm.inputs import fit_view, fitted_size
from iqa_plugins.scorers.mllm.params import ChatParams
from iqa_plugins.scorers.mllm.scorer import MLLMScorer


class HFVLMScorer(MLLMScorer):
    """Any transformers image-text-to-text chat model: level-token probabilities in one pass.

    ``system_role``: ``system`` sends the standard's system text as a system turn; ``prepend``
    puts it at the start of the user turn; ``auto`` (default) uses a system turn when the chat
    template renders one and prepends otherwise (templates that raise on, or silently drop, a
    system turn, as some LLaVA / Gemma / Mistral templates do).

    ``processor_options`` go to ``AutoProcessor.from_pretrained`` (e.g. Qwen's pixel budget,
    ``size: {shortest_edge: MIN, longest_edge: MAX}``: its ``min_pixels`` / ``max_pixels`` are
    deprecated in transformers 5). ``max_pixels`` caps every view before the
    processor sees it (scaled down, aspect kept): a 12-megapixel whole view would otherwise be
    ~15k image tokens for Qwen2-VL. ``null`` turns the cap off.
    """

    class Params(ChatParams):
        system_role: Literal["auto", "system", "prepend"] = "auto"
        processor_options: dict[str, Any] = Field(
            default_factory=dict, description="keyword arguments for AutoProcessor.from_pretrained"
        )
        max_pixels: int | None = Field(default=1024 * 1024, ge=1)

    def _load(self, source: str) -> tuple[Any, Any]:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(source, **self.hub_kwargs(), **self.params.processor_options)
        model = AutoModelForImageTextToText.from_pretrained(source, **self.hub_kwargs(), **self.model_kwargs())
        self._expansions: dict[tuple[int, int], int] = {}  # image tokens per tile grid (rows, cols)
        return model, processor

    def fit(self, image: Any) -> Any:
        return fit_view(image, self.params.max_pixels)

    def fit_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return fitted_size(size, self.params.max_pixels)

    def image_tokens(self, size: tuple[int, int]) -> int | None:
        """The tokens the processor writes for a fitted image of ``size``. Tiling processors
        (Idefics3 / SmolVLM and kin) mark each tile and each row with tokens of their own, which
        ``_get_num_multimodal_tokens`` leaves out since transformers 5.25 (it counts the image
        placeholders only). For them the count is the length of the processor's own expansion
        (``replace_image_token``) of the grid its image processor picks for this size, so the
        hook follows the processor instead of copying its arithmetic; other processors answer
        through the base class."""
        grid = self._tile_grid(size)
        if grid is None:
            return super().image_tokens(size)
        if grid not in self._expansions:
            rows, cols = grid
            text = self.processor.replace_image_token({"rows": [[rows]], "cols": [[cols]]}, 0)
            self._expansions[grid] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._expansions[grid]

    def _tile_grid(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """(rows, cols) of tiles the image processor cuts a fitted image of ``size`` into, for
        processors whose expansion is written from that grid alone; None for the others."""
        processor = getattr(self, "processor", None)
        count = getattr(getattr(processor, "image_processor", None), "get_number_of_image_patches", None)
        if count is None or not hasattr(processor, "replace_image_token"):
            return None
        w, h = size
        try:
            patches = count(h, w, {})
            grid = (int(patches[1]), int(patches[2]))
            processor.replace_image_token({"rows": [[grid[0]]], "cols": [[grid[1]]]}, 0)
        except (KeyError, IndexError, TypeError, ValueError, NotImplementedError):
            return None  # a processor whose expansion needs more than the grid, or no grid at all
        return grid

    def processor_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """What Qwen2-VL's image processor (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) resizes a view of
        ``size`` to, after the ``max_pixels`` cap: sides multiples of patch x merge, pixels
        within its min/max (its own ``smart_resize``). None for other processors or before
        ``load``."""
        from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as pil
        from transformers.models.qwen2_vl import image_processing_qwen2_vl as tv

        image_processor = getattr(getattr(self, "processor", None), "image_processor", None)
        if not isinstance(image_processor, (tv.Qwen2VLImageProcessor, pil.Qwen2VLImageProcessorPil)):
            return None
        w, h = self.fit_size(size)
        limits = image_processor.size
        height, width = tv.smart_resize(
            h,
            w,
            image_processor.patch_size * image_processor.merge_size,
            min_pixels=limits["shortest_edge"],
            max_pixels=limits["longest_edge"],
        )
        return width, height

    def input_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """:meth:`processor_size`, where a view already of that size keeps it, so a view shrunk
        to it gets the same tokens; else None (``smart_resize`` is not a fixed point at extreme
        aspect ratios with a small pixel budget: 377x83 -> 224x28 -> 252x56 at 16 tokens)."""
        target = self.processor_size(size)
        return target if target is not None and self.processor_size(target) == target else None

    def system_role(self, standard: Standard) -> SystemRole:
        role = self.params.system_role
        if role == "auto":
            return super().system_role(standard)
        if role == "system" and not template_accepts_system(self.render, standard.system):
            raise IQAError(
                f"the chat template of {self.params.model!r} does not render a system turn; "
                "set system_role to 'prepend' (or 'auto') for this model"
            )
        return role
