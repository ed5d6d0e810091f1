"""Randomly initialised models at real size (or tiny), written like downloaded checkpoints.

Two VLMs. Janus-Pro-7B-shaped (transformers' native Janus classes): a DeepSeek-LLM-7B language
model (30 layers, hidden 4096, MLP 11008, 32 heads, vocabulary 102400), a SigLIP-L vision tower
at 384 px / patch 16 (576 image tokens) and the aligner to 4096, with the VQ image-generation
parts at their default size. Qwen2.5-VL-7B-shaped (:data:`QWEN25_VL_7B`), scored through the
generic ``hf_vlm`` plugin: views of different sizes give prompts of different lengths.
Weights are random (bf16 on CUDA), so scores mean nothing; shapes, token counts and FLOPs are
the real models'. The tokenizer is the local word-level one of ``iqa_plugins.testing.tiny_vlm``
(no Hub), so the *text* prompt is one token per word rather than BPE pieces; the benchmark
counts the tokens the processor actually produced.
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


# Qwen2.5-VL-7B-Instruct (Qwen/Qwen2.5-VL-7B-Instruct config.json): a 28-layer LM with grouped
# KV heads and M-RoPE, a 32-block windowed-attention ViT, 14 px patches merged 2x2 into one
# token. ``max_pixels`` bounds a view at 1280 tokens (the model card's suggested setting), so
# views of a 1024x768 image and its crops give prompts of ~100 to ~1000 image tokens.
QWEN25_VL_7B: dict[str, Any] = {
    "text": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        rope_theta=1e6,
        mrope_section=[16, 24, 24],
    ),
    "vision": dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
        tokens_per_second=2,
    ),
    "min_pixels": 4 * 28 * 28,
    "max_pixels": 1280 * 28 * 28,
}
# Test size: the real geometry (patches, merge, windows, pixel bounds), tiny widths.
QWEN25_VL_TINY: dict[str, Any] = {
    "text": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=None,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_theta=1e6,
        mrope_section=[2, 3, 3],
    ),
    "vision": dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=32,
        window_size=112,
        fullatt_block_indexes=[1],
        tokens_per_second=2,
    ),
    "min_pixels": 4 * 28 * 28,
    "max_pixels": 256 * 28 * 28,
}
# Between the two, for CPU profiles: 1/4 of the 7B's widths (same head sizes), 4 layers of each stack.
QWEN25_VL_MID: dict[str, Any] = {
    "text": {
        **QWEN25_VL_7B["text"],
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 4,
        "num_attention_heads": 7,  # the 7B's head size (128), so its M-RoPE sections fit
        "num_key_value_heads": 1,
    },
    "vision": {
        **QWEN25_VL_7B["vision"],
        "depth": 4,
        "hidden_size": 320,
        "intermediate_size": 856,
        "num_heads": 4,
        "out_hidden_size": 896,
        "fullatt_block_indexes": [3],
    },
    "min_pixels": QWEN25_VL_7B["min_pixels"],
    "max_pixels": QWEN25_VL_7B["max_pixels"],
}


def build_qwen25_vl(out: str | Path, dims: dict[str, Any], device: str, dtype: str, seed: int = 0) -> Path:
    """A Qwen2.5-VL directory (model + processor, ``save_pretrained``) at ``dims`` with random
    weights and the local word-level tokenizer; reused when already written."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from iqa_plugins.testing.tiny_vlm import QWEN2_VL_TEMPLATE, build_tokenizer, tokenizer_class_for

    out = Path(out)
    if (out / "config.json").exists() and (out / "processor_config.json").exists():
        return out
    tokenizer = build_tokenizer(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
            "im_start_token": "<|im_start|>",
        },
        QWEN2_VL_TEMPLATE,
        tokenizer_class_for(Qwen2_5_VLProcessor),
    )
    text = dict(dims["text"])
    section, theta = text.pop("mrope_section"), text.pop("rope_theta")
    text["vocab_size"] = text["vocab_size"] or len(tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={
            **text,
            "rope_parameters": {"rope_type": "default", "rope_theta": theta, "mrope_section": section},
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**dims["vision"], "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    pixels = {"shortest_edge": dims["min_pixels"], "longest_edge": dims["max_pixels"]}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=pixels, patch_size=14, merge_size=2),
        video_processor=Qwen2VLVideoProcessor(size=pixels, patch_size=14, merge_size=2),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_TEMPLATE,
    )
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
