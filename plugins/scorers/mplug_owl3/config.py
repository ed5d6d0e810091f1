"""mPLUG-Owl3's ``config.json`` (model_type ``mplugowl3``) as transformers 5 configs.

The checkpoint's config is a Qwen2 config with two additions: ``hyper_layers`` (1-based indices
of the decoder layers that also attend to the image) and ``vision_config`` (a SigLIP vision
config). Reading it into ``Qwen2Config`` + ``SiglipVisionConfig`` lets the native model be
built from transformers' own pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iqa_core.errors import IQAError

if TYPE_CHECKING:
    from transformers import Qwen2Config, SiglipVisionConfig

TEXT_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "rms_norm_eps",
    "rope_theta",
)
VISION_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "image_size",
    "patch_size",
)


@dataclass
class Owl3Config:
    """The language model, the vision tower, and which layers are hyper layers (0-based)."""

    text: Qwen2Config
    vision: SiglipVisionConfig
    hyper_layers: tuple[int, ...]

    @property
    def image_size(self) -> int:
        return int(self.vision.image_size)

    @property
    def patches(self) -> int:
        """Image embeddings per crop (729 for SigLIP so400m at 384 px, patch 14)."""
        return (self.vision.image_size // self.vision.patch_size) ** 2


def read_config(raw: dict[str, Any], where: str) -> Owl3Config:
    """``raw`` (a parsed config.json) as :class:`Owl3Config`; a config that is not mPLUG-Owl3's
    240728 layout fails naming ``where`` and the field."""
    from transformers import Qwen2Config, SiglipVisionConfig

    if raw.get("model_type") != "mplugowl3":
        raise IQAError(f"{where}: model_type is {raw.get('model_type')!r}, not 'mplugowl3' (mPLUG-Owl3-7B-240728)")
    vision = raw.get("vision_config")
    missing = [k for k in (*TEXT_KEYS, "hyper_layers") if k not in raw]
    missing += [f"vision_config.{k}" for k in VISION_KEYS if not isinstance(vision, dict) or k not in vision]
    if missing:
        raise IQAError(f"{where}: mPLUG-Owl3 config has no {missing[0]}")
    layers = int(raw["num_hidden_layers"])
    hyper = tuple(int(i) - 1 for i in raw["hyper_layers"])
    if any(not 0 <= i < layers for i in hyper):
        raise IQAError(f"{where}: hyper_layers {raw['hyper_layers']} are not all within 1..{layers}")
    text = Qwen2Config(
        **{k: raw[k] for k in TEXT_KEYS if k != "rope_theta"},
        rope_parameters={"rope_type": "default", "rope_theta": float(raw["rope_theta"])},
        max_position_embeddings=int(raw.get("max_position_embeddings", 32768)),
        hidden_act=raw.get("hidden_act", "silu"),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        use_sliding_window=False,  # 240728 never slides (use_sliding_window: false)
        bos_token_id=raw.get("bos_token_id"),
        eos_token_id=raw.get("eos_token_id"),
    )
    vision_fields = {k: v for k, v in vision.items() if k != "model_type"}
    return Owl3Config(text=text, vision=SiglipVisionConfig(**vision_fields), hyper_layers=hyper)
