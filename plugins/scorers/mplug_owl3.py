"""mPLUG-Owl3 (``mPLUG/mPLUG-Owl3-7B-240728``), which exists only as remote code on the Hub.

Loading it runs Python files downloaded from the model repository, so it is an explicit opt-in:
``trust_remote_code: true`` in the recipe. The interface used is the one the model card and its
``modeling_mplugowl3.py`` / ``processing_mplugowl3.py`` define: ``model.init_processor(tokenizer)``
builds the processor; it takes ONE conversation (``system`` / ``user`` / ``assistant`` messages
with an ``<|image|>`` placeholder, an empty assistant turn opening the answer) plus its images,
and returns ``input_ids`` (1, L), ``media_offset`` and ``pixel_values`` (the image cut into
crops). ``model.forward_image`` embeds the crops; the hyper-attention language model
``model.language_model.model`` takes ``input_ids``, ``image_embeds`` and ``media_offset``; its
``lm_head`` is applied to the last position only.

Because the processor handles one conversation at a time and the media offsets of a padded
batch are not part of its documented interface, views are run one forward pass each.

What has NOT been run here (no hub access, no weights): loading the real model, its processor,
the scoring forward pass and ``generate``. Its remote code (as published copies of
``modeling_mplugowl3.py`` / ``modeling_hyper_qwen2.py`` show) imports
``transformers.modeling_attn_mask_utils`` (gone in transformers 5.24) and builds its vision
tower from ``transformers.models.siglip.modeling_siglip.SiglipVisionTransformer`` (a plain
module up to 4.57, a pretrained-model class in 5.0, gone by 5.17), and needs ``einops`` and
``torchvision``. Together with the scorers' ``dtype=`` argument (4.56+) that makes transformers
4.56-4.57 the environment it is written for: the ``mplug-owl3`` extra. :func:`remote_code_support`
checks the two imports before anything is downloaded, and names that environment when they fail.
Scoring calls the language model with ``use_cache=False``, so the cache methods transformers
4.55 removed are never reached. Tested here: the opt-in gate, the messages, the label check,
the missing-path and wrong-transformers errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from iqa_core.api import Standard, View
from iqa_core.errors import ModelUnavailable
from iqa_plugins.scorers.mllm.inputs import fit_view
from iqa_plugins.scorers.mllm.params import MLLMParams
from iqa_plugins.scorers.mllm.scorer import MLLMScorer

if TYPE_CHECKING:
    import torch

IMAGE_PLACEHOLDER = "<|image|>"
NEEDED_TRANSFORMERS = "transformers 4.56-4.57 (pip install 'iqa[models,mplug-owl3]' in its own environment)"


def remote_code_support() -> str | None:
    """Why the installed transformers cannot run mPLUG-Owl3's remote code, or None if it can."""
    import importlib

    import transformers

    needed = [
        ("transformers.modeling_attn_mask_utils", None),
        ("transformers.models.siglip.modeling_siglip", "SiglipVisionTransformer"),
    ]
    for module, name in needed:
        try:
            found = importlib.import_module(module)
        except ImportError:
            found = None
        if found is None or (name and not hasattr(found, name)):
            missing = f"{module}.{name}" if name else module
            return (
                f"its remote code needs {NEEDED_TRANSFORMERS}; transformers {transformers.__version__} has no {missing}"
            )
    return None


def owl3_messages(standard: Standard) -> list[dict[str, str]]:
    """The conversation the mPLUG-Owl3 processor expects; the empty assistant turn opens the answer.

    Built fresh per call: the processor rewrites message contents in place.
    """
    messages = [
        {"role": "user", "content": f"{IMAGE_PLACEHOLDER}\n{standard.user}"},
        {"role": "assistant", "content": ""},
    ]
    if standard.system:
        messages.insert(0, {"role": "system", "content": standard.system})
    return messages


class MPlugOwl3Scorer(MLLMScorer):
    """mPLUG-Owl3 (Hub remote code; needs trust_remote_code: true): level-token probabilities."""

    class Params(MLLMParams):
        model: str = "mPLUG/mPLUG-Owl3-7B-240728"
        trust_remote_code: bool = False

        @model_validator(mode="after")
        def _opted_in(self) -> MPlugOwl3Scorer.Params:
            """Checked with the recipe (``iqa validate``), before any run starts."""
            if not self.trust_remote_code:
                raise ValueError(
                    f"{self.model!r} is only available as remote code: loading it runs Python "
                    "files from its Hub repository on this machine. Set `trust_remote_code: true` "
                    "in this scorer's params to opt in."
                )
            return self

    def model_kwargs(self) -> dict[str, Any]:
        # The model card supports only sdpa or flash_attention_2, on every device.
        return {**super().model_kwargs(), "attn_implementation": self.params.attn_implementation or "sdpa"}

    def _load(self, source: str) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoTokenizer

        if reason := remote_code_support():
            raise ModelUnavailable(self.params.model, reason, "Run this scorer in that environment.")

        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True, **self.hub_kwargs())
        model = AutoModel.from_pretrained(source, trust_remote_code=True, **self.hub_kwargs(), **self.model_kwargs())
        return model, model.init_processor(tokenizer)

    def prompt(self, standard: Standard) -> str:
        """The text the processor builds (chatml, media placeholder unexpanded), for inspection."""
        chunks = self.processor.build_text_qwen(owl3_messages(standard))
        return "".join(chunk["text"] for chunk in chunks)

    def prepare(self, views: Sequence[View], standard: Standard) -> list[Any]:
        """One processed conversation per view (the processor takes one at a time)."""
        return [self.processor(owl3_messages(standard), images=[fit_view(v.image, None)], videos=None) for v in views]

    def generated_ids(self, inputs: list[Any]) -> list[list[int]]:
        """Greedy answers through the model's own ``generate`` (which returns the new tokens
        only), one view at a time. ``use_cache=False``: the 2024 remote code's cache path calls
        ``DynamicCache.get_usable_length``, which transformers removed in 4.55; a few answer
        tokens without a cache cost little."""
        rows = []
        for one in inputs:
            out = self.model.generate(
                **one.to(self.device),
                tokenizer=self.tokenizer,
                max_new_tokens=self.params.max_new_tokens,
                decode_text=False,
                do_sample=False,
                use_cache=False,
            )
            rows.append(out[0].tolist())
        return rows

    def last_logits(self, inputs: list[Any]) -> torch.Tensor:
        import torch

        rows = []
        for one in inputs:
            one = one.to(self.device)
            image_embeds = self.model.forward_image(one["pixel_values"])
            hidden = self.model.language_model.model(
                input_ids=one["input_ids"],
                image_embeds=image_embeds,
                media_offset=one["media_offset"],
                use_cache=False,
                return_dict=True,
            ).last_hidden_state
            rows.append(self.model.language_model.lm_head(hidden[:, -1, :]))
        return torch.cat(rows)
