"""CLIP-IQA (Wang et al., 2023): zero-shot quality from a CLIP ResNet and antonym prompts.

Each view is scored at its own resolution: the RN50 attention pool is evaluated
without its positional embedding (CLIP-IQA's change), so no resize to 224 is needed.
Views of different sizes are never padded; views of equal size share one forward.

Modes:

* ``antonym`` (CLIP-IQA): per (bad, good) prompt pair, the softmax of the two
  similarities; P(good) is averaged over the pairs. The result has K=2 columns with
  values (0.0, 1.0), so its expected value is that mean P(good); the standard's levels
  are ignored. ``antonyms`` picks the pairs: ``iceclear`` (default) is the CLIP-IQA
  paper's single "Good photo."/"Bad photo." pair, ``pyiqa`` the five pairs pyiqa's
  ``clipiqa`` averages ("Good image"/"bad image" ... "Noise-free image"/"noisy image");
  the two give different scores on the same weights. Or list your own pairs.
* ``standard``: one prompt per level of the standard (``template`` filled with the
  level's description), softmax over K; values are the standard's.

Logits use the model's learned temperature (``logit_scale.exp()``, 100 for OpenAI CLIP).
The model runs in float32 by default: under bf16 this small model's scores moved by up to
0.08. OpenAI's CLIP text tower uses QuickGELU; open_clip knows that from a pretrained tag
but not from a weights file, so for a file it is inferred from the architecture's released
weights (all RN models: QuickGELU), and must be set with ``quick_gelu`` where they disagree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from iqa_core.api import LevelProbs, Params, Scorer, Standard, View
from iqa_core.errors import IQAError, ModelUnavailable
from iqa_core.weights import Weights

if TYPE_CHECKING:
    import torch

MIN_SIDE = 32  # RN50's total stride: smaller views are upscaled to one feature cell
HUB_WEIGHTS = "open_clip_model.safetensors"  # what open_clip fetches from a Hub repo first
ANTONYM_SETS: dict[str, list[tuple[str, str]]] = {
    "iceclear": [("Bad photo.", "Good photo.")],  # CLIP-IQA (IceClear/CLIP-IQA)
    "pyiqa": [  # pyiqa's clipiqa
        ("bad image", "Good image"),
        ("blurry image", "Sharp image"),
        ("blurry edges", "sharp edges"),
        ("low resolution image", "High resolution image"),
        ("noisy image", "Noise-free image"),
    ],
}


class CLIPIQAScorer(Scorer):
    """CLIP-IQA: open_clip RN50, 'Good photo.' vs 'Bad photo.' at native resolution."""

    requires = {"torch": "iqa[models]", "open_clip": "iqa[models]"}

    class Params(Params):
        model: str = "RN50"
        pretrained: str = "openai"
        quick_gelu: bool | None = None
        quick_gelu: bool | None = Field(
            None, description="QuickGELU text tower; default: from the pretrained tag, or inferred for a weights file"
        )
        mode: Literal["antonym", "standard"] = "antonym"
        antonyms: list[tuple[str, str]] = Field(
            default_factory=lambda: list(ANTONYM_SETS["iceclear"]),
            description="(bad, good) prompt pairs, or 'iceclear' (Good/Bad photo.) or 'pyiqa' (its five pairs)",
        )
        template: str = "A photo of {description} quality."
        max_side: int | None = Field(default=None, ge=MIN_SIDE)
        batch_size: int = Field(default=32, ge=1)
        device: str = "auto"
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
            "float32", description="auto = bf16 on CUDA, which moves this small model's scores by up to 0.08"
        )

        @field_validator("antonyms", mode="before")
        @classmethod
        def _preset_or_pairs(cls, value: Any) -> Any:
            if isinstance(value, str):
                if value not in ANTONYM_SETS:
                    raise ValueError(
                        f"unknown antonym set {value!r}; sets: {', '.join(ANTONYM_SETS)}, or a list of pairs"
                    )
                return ANTONYM_SETS[value]
            if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
                return [tuple(value)]  # one pair written flat: [Bad photo., Good photo.]
            return value

        @field_validator("antonyms")
        @classmethod
        def _some_pairs(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
            if not value:
                raise ValueError("give at least one (bad, good) pair")
            return value

    def __init__(self, params: Params | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None
        self._dtype: Any = None
        self._mean: Any = None
        self._std: Any = None
        self._text: dict[tuple[str, ...], torch.Tensor] = {}

    @property
    def model_label(self) -> str:
        """The model as error messages name it: architecture and weights."""
        p = self.params
        return p.model if p.model.startswith(("local-dir:", "hf-hub:")) else f"{p.model} ({p.pretrained})"

    def weights(self) -> list[Weights]:
        """The local weights, or the Hub file open_clip downloads for the pretrained tag (``iqa check``)."""
        p = self.params
        if p.model.startswith("local-dir:"):
            return [Weights(path=p.model.removeprefix("local-dir:"), files=("open_clip_config.json",))]
        if p.model.startswith("hf-hub:"):
            return [Weights(repo=p.model.removeprefix("hf-hub:"), files=("open_clip_config.json", HUB_WEIGHTS))]
        if Path(p.pretrained).suffix or Path(p.pretrained).expanduser().exists():
            return [Weights(path=p.pretrained)]
        import open_clip

        hub = open_clip.get_pretrained_cfg(p.model, p.pretrained).get("hf_hub", "")
        repo, filename = os.path.split(hub) if hub else ("", "")
        return [Weights(repo=repo, files=(filename or HUB_WEIGHTS,))] if repo else [Weights(path=p.pretrained)]

    def load(self, standard: Standard) -> None:
        import open_clip
        import torch

        from iqa_plugins._torch import resolve_device, resolve_dtype

        p = self.params
        self._device = resolve_device(p.device)
        self._dtype = resolve_dtype(p.dtype, self._device)
        model = self._create(open_clip).to(self._device).eval()
        if not hasattr(model.visual, "attnpool"):
            raise IQAError(
                f"clip_iqa needs a CLIP ResNet image tower (RN50, RN101, ...); {p.model!r} has "
                f"{type(model.visual).__name__}"
            )
        cfg = open_clip.get_model_preprocess_cfg(model)
        self._mean = torch.tensor(cfg["mean"], device=self._device).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg["std"], device=self._device).view(1, 3, 1, 1)
        self._model = model
        self._tokenizer = open_clip.get_tokenizer(p.model)
        self._text_features(self._prompts(standard))

    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        return self.forward(self.prepare(views, standard), standard)

    def prepare(self, views: Sequence[View], standard: Standard) -> list[Any]:
        """Resized RGB images (CPU work, overlapped by the engine with the previous batch)."""
        return [self._resize(v.image) for v in views]

    def forward(self, images: list[Any], standard: Standard) -> LevelProbs:
        import torch

        if self._model is None:
            self.load(standard)
        prompts = self._prompts(standard)
        text = self._text_features(prompts)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.size, []).append(i)
        antonym = self.params.mode == "antonym"
        probs = np.zeros((len(images), 2 if antonym else len(prompts)))
        with torch.no_grad():
            scale = self._model.logit_scale.exp().float()
            for idx in groups.values():
                pixels = torch.stack([self._to_tensor(images[i]) for i in idx])
                feats = self._encode_images(pixels).float()
                feats = feats / feats.norm(dim=-1, keepdim=True)
                logits = scale * feats @ text.T
                if antonym:  # softmax within each (bad, good) pair, then the mean over pairs
                    logits = logits.view(len(idx), -1, 2)
                    probs[idx] = logits.softmax(dim=-1).mean(dim=1).cpu().numpy()
                else:
                    probs[idx] = logits.softmax(dim=-1).cpu().numpy()
        return LevelProbs(probs, self.level_values(standard))

    def level_values(self, standard: Standard) -> tuple[float, ...]:
        return (0.0, 1.0) if self.params.mode == "antonym" else tuple(standard.values)

    def _create(self, open_clip: Any) -> torch.nn.Module:
        """Build the model with its weights, turning every loading failure into ModelUnavailable."""
        p = self.params
        has_schema = p.model.startswith(("local-dir:", "hf-hub:"))
        quick_gelu = p.quick_gelu
        if quick_gelu is None and not has_schema:
            quick_gelu = infer_quick_gelu(open_clip, p.model, p.pretrained)
        from iqa_core.weights import hub_unreachable, unavailable_reason

        local = p.model.startswith("local-dir:") or Path(p.pretrained or "").is_file()
        unreachable = None if local else hub_unreachable()  # one probe: offline, the cache answers at once
        logging.disable(logging.ERROR)  # open_clip logs a failed download before raising it
        try:
            return open_clip.create_model(
                p.model,
                pretrained=None if has_schema else p.pretrained,
                force_quick_gelu=bool(quick_gelu),
                require_pretrained=True,
            )
        except Exception as e:  # offline, missing file, unknown name: not loadable here
            hint = (
                "Offline? Download the weights where you have internet and set the recipe's "
                "`pretrained:` to the local .pt/.bin/.safetensors file (keeping `model:` the "
                "architecture, e.g. RN50), or set `model: local-dir:DIR` for a folder with "
                "open_clip_config.json and the weights."
            )
            reason = unavailable_reason(self.model_label) if unreachable else f"{type(e).__name__}: {e}".rstrip(". ")
            raise ModelUnavailable(self.model_label, reason, hint) from e
        finally:
            logging.disable(logging.NOTSET)

    def _prompts(self, standard: Standard) -> tuple[str, ...]:
        """Antonym mode: bad1, good1, bad2, good2, ...; standard mode: one prompt per level."""
        if self.params.mode == "antonym":
            return tuple(text for pair in self.params.antonyms for text in pair)
        return tuple(self.params.template.format(description=d) for d in standard.descriptions)

    def _text_features(self, prompts: tuple[str, ...]) -> torch.Tensor:
        """Unit-norm text embeddings, computed once per prompt set."""
        import torch

        if prompts not in self._text:
            tokens = self._tokenizer(list(prompts)).to(self._device)
            with torch.no_grad(), self._autocast():
                feats = self._model.encode_text(tokens).float()
            self._text[prompts] = feats / feats.norm(dim=-1, keepdim=True)
        return self._text[prompts]

    def input_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The view's own size, bounded by ``max_side`` and lifted to the network's minimum."""
        w, h = size
        scale = 1.0
        if self.params.max_side is not None and max(w, h) > self.params.max_side:
            scale = self.params.max_side / max(w, h)
        scale = max(scale, MIN_SIDE / min(w, h))
        return (w, h) if scale == 1.0 else (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))

    def _resize(self, image: Any) -> Any:
        """RGB at :meth:`input_size`."""
        from PIL import Image

        image = image.convert("RGB")
        size = self.input_size(image.size)
        return image if size == image.size else image.resize(size, Image.BICUBIC)

    def _to_tensor(self, image: Any) -> torch.Tensor:
        import torch

        pixels = torch.from_numpy(np.array(image)).to(self._device)
        pixels = pixels.permute(2, 0, 1).float() / 255.0
        return (pixels - self._mean[0]) / self._std[0]

    def _encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """The ResNet trunk, then attention pooling without the positional embedding."""
        visual = self._model.visual
        with self._autocast():
            x = visual.stem(pixels)
            for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
                x = layer(x)
            return _attention_pool(visual.attnpool, x)

    def _autocast(self) -> Any:
        import torch

        if self._dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self._device.type, dtype=self._dtype)


def infer_quick_gelu(open_clip: Any, model: str, pretrained: str) -> bool:
    """Whether ``model`` with ``pretrained`` has OpenAI's QuickGELU text tower.

    A pretrained tag says so in open_clip's table. A weights file says nothing, so it takes
    the flag every released weight of the architecture shares (all RN models: QuickGELU; a
    GELU tower would move the scores and the ranking); where they differ, it must be set.
    """
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if cfg:
        return bool(cfg.get("quick_gelu"))
    flags = {
        bool(open_clip.get_pretrained_cfg(model, t).get("quick_gelu"))
        for t in open_clip.list_pretrained_tags_by_model(model)
    }
    if len(flags) != 1:
        why = "its released weights differ" if flags else "open_clip lists no released weights for it"
        raise IQAError(
            f"clip_iqa: cannot tell whether {pretrained!r} ({model}) uses QuickGELU ({why}): "
            "set quick_gelu: true (OpenAI-trained weights) or false"
        )
    return flags.pop()


def _attention_pool(pool: Any, x: torch.Tensor) -> torch.Tensor:
    """open_clip's ``AttentionPool2d`` minus the positional embedding: the mean token
    attends over itself and every spatial token, so any feature-map size works."""
    import torch
    import torch.nn.functional as F

    tokens = x.flatten(2).permute(2, 0, 1)  # (HW, N, C)
    tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens], dim=0)
    pooled, _ = F.multi_head_attention_forward(
        query=tokens[:1],
        key=tokens,
        value=tokens,
        embed_dim_to_check=tokens.shape[-1],
        num_heads=pool.num_heads,
        in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True,
        q_proj_weight=pool.q_proj.weight,
        k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight,
        need_weights=False,
    )
    return pooled[0]
