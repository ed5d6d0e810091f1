"""Randomly initialised models at real size (or tiny), written like downloaded checkpoints.

The VLM is Janus-Pro-7B-shaped (transformers' native Janus classes): a DeepSeek-LLM-7B
language model (30 layers, hidden 4096, MLP 11008, 32 heads, vocabulary 102400), a SigLIP-L
vision tower at 384 px / patch 16 (576 image tokens) and the aligner to 4096, with the VQ
image-generation parts at their default size. Weights are random (bf16 on CUDA), so scores
mean nothing; shapes, token counts and FLOPs are the real model's. The tokenizer is the
local word-level one of ``iqa_plugins.testing.tiny_vlm`` (no Hub), so the *text* prompt is
one token per word rather than BPE pieces; the benchmark counts the tokens the processor
actually produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Janus-Pro-7B (deepseek-community/Janus-Pro-7B config.json)
JANUS_PRO_7B: dict[str, Any] = {
    "text": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=30,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=102400,
        max_position_embeddings=16384,
        rms_norm_eps=1e-6,
    ),
    "vision": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=384,
        patch_size=16,
        projection_dim=4096,
        depth=2,
        num_image_tokens=576,
    ),
    "vq": dict(projection_dim=4096, image_token_embed_dim=4096),
}


def build_janus(out: str | Path, dims: dict[str, Any], device: str, dtype: str) -> Path:
    """A Janus directory at ``dims`` through the tiny-model builder; reused when already written
    (a 7B model is ~15 GB)."""
    from iqa_plugins.testing.tiny_vlm import build_janus as build

    out = Path(out)
    if (out / "config.json").exists() and (out / "processor_config.json").exists():
        return out
    return build(out, dims=dims, device=device, dtype=dtype)


def janus_param_count(dims: dict[str, Any]) -> dict[str, int]:
    """Parameter counts of the architecture without allocating it (meta device)."""
    import torch
    from transformers import JanusConfig, JanusForConditionalGeneration

    text = dict(dims["text"])
    text["vocab_size"] = text["vocab_size"] or 128
    config = JanusConfig(text_config=text, vision_config=dims["vision"], vq_config=dims["vq"])
    with torch.device("meta"):
        model = JanusForConditionalGeneration(config)
    return {"total": sum(p.numel() for p in model.parameters()), "language_model": language_model_params(model)}


def language_model_params(model: Any) -> int:
    """Parameters a text token passes through: the decoder stack, embeddings and LM head."""
    inner = getattr(model, "model", model)
    lm = getattr(inner, "language_model", None) or model.language_model
    n = sum(p.numel() for p in lm.parameters())
    head = getattr(model, "lm_head", None)
    if head is not None:
        n += sum(p.numel() for p in head.parameters())
    return n
