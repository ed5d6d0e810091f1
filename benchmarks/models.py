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
# the same architecture, small enough to run on a CPU in a second
JANUS_TINY: dict[str, Any] = {
    "text": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=None,
        max_position_embeddings=1024,
    ),
    # transformers 4's JanusProcessor hard-codes 576 image tokens: keep the real geometry
    "vision": dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=384,
        patch_size=16,
        projection_dim=32,
        depth=1,
        num_image_tokens=576,
    ),
    "vq": dict(
        embed_dim=8,
        num_embeddings=16,
        latent_channels=32,
        base_channels=32,
        channel_multiplier=[1, 1],
        num_res_blocks=1,
        projection_dim=32,
        image_token_embed_dim=32,
        num_hidden_layers=1,
    ),
}


def build_janus(
    out: str | Path, dims: dict[str, Any], device: str = "cpu", dtype: str = "float32", seed: int = 0
) -> Path:
    """Write a Janus model + processor directory (``save_pretrained``) with random weights.

    The model is created directly on ``device`` in ``dtype`` (a 7B model initialises in
    seconds on a GPU, minutes on a CPU) and saved as safetensors; the scorer then loads it
    by path like any downloaded checkpoint.
    """
    import torch
    from transformers import (
        JanusConfig,
        JanusForConditionalGeneration,
        JanusImageProcessor,
        JanusProcessor,
        JanusVisionConfig,
        JanusVQVAEConfig,
        LlamaConfig,
    )

    from iqa_plugins.testing.tiny_vlm import JANUS_TEMPLATE, build_tokenizer, tokenizer_class_for

    out = Path(out)
    if (out / "config.json").exists() and (out / "processor_config.json").exists():
        return out
    tokenizer = build_tokenizer(
        {"bos_token": "<|begin_of_sentence|>", "eos_token": "<|end_of_sentence|>", "pad_token": "<pad>"},
        {
            "image_token": "<image_placeholder>",
            "boi_token": "<begin_of_image>",
            "eoi_token": "<end_of_image>",
            "user_token": "<|User|>",
            "assistant_token": "<|Assistant|>",
        },
        JANUS_TEMPLATE,
        tokenizer_class_for(JanusProcessor),
    )
    text_dims = dict(dims["text"])
    text_dims["vocab_size"] = text_dims["vocab_size"] or len(tokenizer)
    assert text_dims["vocab_size"] >= len(tokenizer)
    text = LlamaConfig(
        **text_dims,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = JanusVisionConfig(**dims["vision"])
    vq = JanusVQVAEConfig(**dims["vq"])
    config = JanusConfig(
        text_config=text,
        vision_config=vision,
        vq_config=vq,
        image_token_id=tokenizer.convert_tokens_to_ids("<image_placeholder>"),
    )
    torch.manual_seed(seed)
    torch_dtype = getattr(torch, dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(device):
            model = JanusForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    size = dims["vision"]["image_size"]
    processor = JanusProcessor(
        image_processor=JanusImageProcessor(size={"height": size, "width": size}),
        tokenizer=tokenizer,
        chat_template=JANUS_TEMPLATE,
        num_image_tokens=dims["vision"]["num_image_tokens"],
        use_default_system_prompt=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


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
