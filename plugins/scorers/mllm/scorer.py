"""The MLLM scorer base: loading the model and the forward pass over length buckets."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from iqa_core.api import LevelProbs, Standard, View
from iqa_core.weights import Weights
from iqa_plugins.scorers.mllm.answers import interpolated_levels, level_probs, parse_answer
from iqa_plugins.scorers.mllm.inputs import Prepared, ViewInputs
from iqa_plugins.scorers.mllm.loading import is_local_path, loading, model_source
from iqa_plugins.scorers.mllm.params import MLLMParams

if TYPE_CHECKING:
    import torch


class MLLMScorer(ViewInputs):
    """Base of the chat-template MLLM scorers; subclasses say how to load the model."""

    Params = MLLMParams
    requires = {"torch": "iqa[models]", "transformers": "iqa[models]"}

    def weights(self) -> list[Weights]:
        """The model directory, or its Hub snapshot (for ``iqa check``)."""
        model = self.params.model
        if is_local_path(model):
            return [Weights(path=model, files=("config.json",))]
        return [Weights(repo=model, revision=self.params.revision)]

    # the attention kernel changes numbers as little as the device does (and ``device`` is uncached)
    uncached_params = ViewInputs.uncached_params | {"local_files_only", "attn_implementation"}
    keyed_when_set = frozenset({"pad_slack"})  # added later: stored scores of exact-length runs stay valid

    @abstractmethod
    def _load(self, source: str) -> tuple[Any, Any]:
        """(model, processor) from a Hub id or local directory."""

    def load(self, standard: Standard) -> None:
        from iqa_plugins._torch import resolve_device, resolve_dtype

        self.device = resolve_device(self.params.device)
        self.dtype = resolve_dtype(self.params.dtype, self.device)
        with loading(self.params.model):
            self.model, self.processor = self._load(model_source(self.params.model))
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:  # e.g. Llama tokenizers; masked out, so any id works
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._label_ids: dict[str, list[int]] = {}
        self._prompts: dict[str, str] = {}
        # a template that cannot render the standard, or labels that cannot be read, fail here
        self.prompt(standard)
        self.label_ids(standard)
        self._text_tokens = self.text_tokens(standard)

    def hub_kwargs(self) -> dict[str, Any]:
        return {"revision": self.params.revision, "local_files_only": self.params.local_files_only}

    def model_kwargs(self) -> dict[str, Any]:
        """Placement, precision and attention for ``from_pretrained``: ``attn_implementation``
        if set, else SDPA on CUDA. Without flash attention, Qwen2.5-VL's vision tower runs one
        attention call per 112-pixel window (thousands per batch at 7B size); flash attention
        runs each layer's windows in one varlen call."""
        kwargs: dict[str, Any] = {"dtype": self.dtype, "device_map": str(self.device)}
        if self.params.attn_implementation is not None:
            kwargs["attn_implementation"] = self.params.attn_implementation
        elif self.device.type == "cuda":
            kwargs["attn_implementation"] = "sdpa"
        return kwargs

    def last_logits(self, prepared: Prepared) -> torch.Tensor:
        """(N, V) next-token logits after each view's prompt, one forward pass per bucket."""
        parts = []
        for rows, inputs in prepared.buckets:
            inputs = inputs.to(self.device, dtype=self.dtype)
            parts.append((rows, self.model(**inputs, logits_to_keep=1, use_cache=False).logits[:, -1, :]))
        out = parts[0][1].new_empty((prepared.n, parts[0][1].shape[-1]))
        for rows, logits in parts:
            out[rows] = logits
        return out

    def generated_ids(self, prepared: Prepared) -> list[list[int]]:
        """The new token ids of each view's greedy answer, one ``generate`` per bucket."""
        out: list[list[int]] = [[] for _ in range(prepared.n)]
        for rows, inputs in prepared.buckets:
            inputs = inputs.to(self.device, dtype=self.dtype)
            new = self.model.generate(
                **inputs,
                max_new_tokens=self.params.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )[:, inputs["input_ids"].shape[1] :]
            for row, ids in zip(rows, new.tolist(), strict=True):
                out[row] = ids
        return out

    def generated_levels(self, inputs: Any, standard: Standard) -> LevelProbs:
        """Greedy answers parsed as numbers, each represented by :func:`interpolated_levels`."""
        levels = set(self.label_ids(standard))
        rows, top = [], []
        for ids in self.generated_ids(inputs):
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            rows.append(interpolated_levels(parse_answer(text), standard.values))
            top.append(bool(ids) and ids[0] in levels)
        return LevelProbs(np.array(rows), standard.values, np.array(top, dtype=bool))

    def forward(self, inputs: Any, standard: Standard) -> LevelProbs:
        import torch

        with torch.inference_mode():
            if self.params.answer == "generate":
                return self.generated_levels(inputs, standard)
            logits = self.last_logits(inputs)
        return level_probs(logits, self.label_ids(standard), standard.values)

    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        if not views:
            k = len(standard.values)
            return LevelProbs(np.zeros((0, k)), standard.values, np.zeros(0, dtype=bool))
        return self.forward(self.prepare(views, standard), standard)
