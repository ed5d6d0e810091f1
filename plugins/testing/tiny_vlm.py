"""Tiny randomly initialised vision-language models of real architectures, for offline tests.

Each ``build_*`` function writes a model + processor directory with ``save_pretrained`` so a
scorer loads it by path through exactly the code path a user's downloaded model takes. The
tokenizer is built locally (:mod:`iqa_plugins.testing.tokenizers`) to behave like the real
family's (byte-level BPE with isolated digits for Janus and Qwen, sentencepiece-style for
LLaVA), with the special tokens the architecture needs and a chat template that renders the
real format. Weights are random (seeded), so scores mean nothing; shapes, padding, prompt,
answer position and token plumbing are what the models exercise.

The image-token expansion of each processor is configured to match its vision tower's output
length (Janus: (image_size / patch_size)^2; LLaVA: patches without CLS; Qwen2-VL: patches /
merge_size^2), the usual source of "image features and image tokens do not match".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iqa_plugins.testing.tokenizers import (
    JANUS_TEMPLATE,
    LLAVA_TEMPLATE,
    QWEN2_5_VL_TEMPLATE,
    QWEN3_VL_TEMPLATE,
    build_tokenizer,
)


def tokenizer_class_for(processor_cls: type) -> str:
    """The tokenizer class a processor accepts: transformers 4 processors reject any tokenizer
    that is not their family's class (Janus: ``LlamaTokenizerFast``); transformers 5 ones check
    nothing, and its family classes rebuild their own pre-tokenizer, so the plain class is used."""
    wanted = getattr(processor_cls, "tokenizer_class", None)
    if isinstance(wanted, tuple):  # (slow, fast)
        wanted = wanted[-1]
    return wanted if wanted and not wanted.startswith("Auto") else "PreTrainedTokenizerFast"


def tiny_text_dims(vocab_size: int) -> dict[str, int]:
    """The language model at test size (hidden 32, 2 layers)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
    }


def save_checkpoint(model: Any, processor: Any, out: str | Path) -> Path:
    """Write the model and processor as a checkpoint directory (what a user downloads)."""
    out = Path(out)
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# Janus at test size: the real geometry (384 px images in 16 px patches -> 576 image tokens,
# which transformers 4's JanusProcessor hard-codes), tiny widths. "vocab_size": None = the tokenizer's.
JANUS_TINY: dict[str, dict[str, Any]] = {
    "text": {**tiny_text_dims(0), "vocab_size": None},
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
    out: str | Path,
    seed: int = 0,
    dims: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> Path:
    """Janus (JanusForConditionalGeneration + JanusProcessor) with random weights.

    ``dims`` default to :data:`JANUS_TINY`; the benchmark passes real (7B) dimensions, and
    ``device``/``dtype`` let such a model be created directly on a GPU in bf16.
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

    dims = dims or JANUS_TINY
    tokenizer = build_tokenizer(
        "byte_level",
        {
            "bos_token": "<|begin_of_sentence|>",
            "eos_token": "<|end_of_sentence|>",
            "pad_token": "<pad>",
        },
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
    text_dims = {**dims["text"], "vocab_size": dims["text"]["vocab_size"] or len(tokenizer)}
    if text_dims["vocab_size"] < len(tokenizer):
        raise ValueError(f"vocab_size {text_dims['vocab_size']} < the tokenizer's {len(tokenizer)}")
    text = LlamaConfig(
        **text_dims,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = JanusConfig(
        text_config=text,
        vision_config=JanusVisionConfig(**dims["vision"]),
        vq_config=JanusVQVAEConfig(**dims["vq"]),
        image_token_id=tokenizer.convert_tokens_to_ids("<image_placeholder>"),
        tie_word_embeddings=False,  # as Janus-Pro's DeepSeek-LLM language model
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):  # a 7B model initialises in seconds on a GPU
            model = JanusForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    size = dims["vision"]["image_size"]
    processor = JanusProcessor(
        image_processor=JanusImageProcessor(size={"height": size, "width": size}),
        tokenizer=tokenizer,
        chat_template=JANUS_TEMPLATE,
        num_image_tokens=dims["vision"]["num_image_tokens"],
        use_default_system_prompt=True,  # as the converted hub checkpoints ship
    )
    return save_checkpoint(model, processor, out)


def build_llava(out: str | Path, seed: int = 0) -> Path:
    """LLaVA (tiny CLIP vision + tiny Llama): 32 px, patch 8 -> 16 image tokens (CLS dropped)."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = build_tokenizer(
        "metaspace",
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"},
        {"image_token": "<image>"},
        LLAVA_TEMPLATE,
        tokenizer_class_for(LlavaProcessor),
    )
    image_size, patch = 32, 8
    n_tokens = (image_size // patch) ** 2
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        projection_dim=32,
    )
    text = LlamaConfig(
        **tiny_text_dims(len(tokenizer)),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=n_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )
    return save_checkpoint(model, processor, out)


QWEN_SPECIALS = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
    "im_start_token": "<|im_start|>",
}


def _qwen_tokenizer(chat_template: str, processor_cls: type) -> Any:
    """Qwen's byte-level tokenizer; ``<think>`` markers are added (not special) tokens, as in Qwen3."""
    tokenizer = build_tokenizer(
        "byte_level",
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        QWEN_SPECIALS,
        chat_template,
        tokenizer_class_for(processor_cls),
    )
    tokenizer.add_tokens(["<think>", "</think>"])
    return tokenizer


def _qwen_text(tokenizer: Any, **extra: Any) -> dict[str, Any]:
    """Qwen text-model dims with multimodal RoPE sections summing to head_dim / 2 = 8."""
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], **extra}
    return {
        **tiny_text_dims(len(tokenizer)),
        # transformers 5 reads rope_parameters; transformers 4 reads rope_scaling + rope_theta
        "rope_parameters": rope,
        "rope_scaling": {key: value for key, value in rope.items() if key != "rope_theta"},
        "rope_theta": 10000.0,
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _qwen_tokens(tokenizer: Any) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


def _qwen_build(family: str, out: str | Path, seed: int) -> Path:
    """Qwen2-VL, Qwen2.5-VL or Qwen3-VL: images resized to 3x3..4x4 merged patches (9-16 image
    tokens), patch 14 (16 for Qwen3-VL), merge 2.

    Token counts follow each image's aspect ratio, so differently shaped views have prompts of
    different lengths: that exercises the length buckets.
    """
    import torch
    import transformers as tf

    merge = 2
    patch = 16 if family == "qwen3_vl" else 14
    pixels = {"shortest_edge": 3 * 3 * (patch * merge) ** 2, "longest_edge": 4 * 4 * (patch * merge) ** 2}
    vision: dict[str, Any] = {"depth": 1, "hidden_size": 32, "num_heads": 2, "patch_size": patch}
    vision.update(spatial_merge_size=merge, temporal_patch_size=2)
    if family == "qwen2_vl":
        names = ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor")
        template, text_extra = QWEN2_5_VL_TEMPLATE, {}
        vision.update(embed_dim=32, mlp_ratio=2)
    elif family == "qwen2_5_vl":
        names = ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor")
        template, text_extra = QWEN2_5_VL_TEMPLATE, {}
        vision.update(intermediate_size=64, out_hidden_size=32, window_size=56, fullatt_block_indexes=[0])
    else:
        names = ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor")
        template, text_extra = QWEN3_VL_TEMPLATE, {"mrope_interleaved": True}
        vision.update(
            intermediate_size=64, out_hidden_size=32, num_position_embeddings=64, deepstack_visual_indexes=[0]
        )
    config_cls, model_cls, processor_cls = (getattr(tf, name) for name in names)
    tokenizer = _qwen_tokenizer(template, processor_cls)
    config = config_cls(
        text_config=_qwen_text(tokenizer, **text_extra), vision_config=vision, **_qwen_tokens(tokenizer)
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    sizes = {"size": pixels, "patch_size": patch, "merge_size": merge}
    video_cls = tf.Qwen3VLVideoProcessor if family == "qwen3_vl" else tf.Qwen2VLVideoProcessor
    processor = processor_cls(
        image_processor=tf.Qwen2VLImageProcessor(**sizes),
        video_processor=video_cls(**sizes),
        tokenizer=tokenizer,
        chat_template=template,
    )
    return save_checkpoint(model, processor, out)


def build_qwen2_vl(out: str | Path, seed: int = 0) -> Path:
    """Qwen2-VL (same chat format as Qwen2.5-VL); see :func:`_qwen_build`."""
    return _qwen_build("qwen2_vl", out, seed)


def build_qwen2_5_vl(out: str | Path, seed: int = 0) -> Path:
    """Qwen2.5-VL (windowed vision attention); see :func:`_qwen_build`."""
    return _qwen_build("qwen2_5_vl", out, seed)


def build_qwen3_vl(out: str | Path, seed: int = 0) -> Path:
    """Qwen3-VL (deepstack vision features, interleaved mRoPE, thinking template); see
    :func:`_qwen_build`."""
    return _qwen_build("qwen3_vl", out, seed)


def greedy_replies(model: Any, tokenizer: Any, inputs: list[Any], max_new_tokens: int) -> list[str]:
    """What greedy ``generate`` writes after each of ``inputs`` (one view each), stripped: the
    paper's answer, to compare with the level the scorer reads."""
    import torch

    replies = []
    for batch in inputs:
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        replies.append(tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return replies


def teach_reply(model: Any, chain: list[int], levels: list[int], answer_inputs: list[Any]) -> None:
    """Make a random model write ``chain[1:]`` after ``chain[0]`` and then a level token, as a
    trained model follows its chat format (e.g. ``":"`` -> ``"Ġ"`` -> a digit for Janus-Pro),
    with the level depending on the image. Changes the weights in place.

    ``answer_inputs`` are model inputs ending with ``chain`` (e.g. the scorer's prepared batches
    for a few views, whose prompts end where the level is written). The chain tokens'
    embeddings are scaled up, so that in a pre-norm transformer the hidden state at each chain
    position is nearly the same for every view and differs between positions. The output row of
    each chain token's successor is set to answer that position's mean hidden state; every level
    row gets a common component that answers the last position's mean (beating every other
    token there) plus a random direction within that position's image-dependent spread, which
    picks the level. Both parts are orthogonal to the earlier positions' means, so no level is
    written early; at those positions each level gets a fixed random logit instead (outside the
    last position's space), so that reading the levels one position early gives an unrelated
    answer, as it does in a trained model.
    """
    import torch

    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    if embed.data_ptr() == head.data_ptr():
        raise ValueError("teach_reply needs untied input and output embeddings")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tok in set(chain):
            embed[tok] *= 30.0
        hidden = torch.cat([chain_hidden(model, inputs, len(chain)) for inputs in answer_inputs]).to(head.dtype)
        means = hidden.mean(dim=0)  # (len(chain), H)
        for position, following in enumerate(chain[1:]):
            head[following] = 20 * means[position] / means[position].norm() ** 2
        earlier = torch.linalg.qr(means[:-1].T).Q if len(chain) > 1 else means[:0].T  # (H, k)

        def outside_earlier(x: torch.Tensor) -> torch.Tensor:
            return x - (x @ earlier) @ earlier.T

        unit = outside_earlier(means[-1])
        unit /= unit.norm()
        spread = outside_earlier(hidden[:, -1] - means[-1])
        spread -= torch.outer(spread @ unit, unit)
        answer_space = torch.linalg.qr(torch.cat([means[-1:], spread]).T).Q
        decoys = [x - (x @ answer_space) @ answer_space.T for x in means[:-1]]
        for level in levels:
            direction = torch.randn(len(spread), generator=generator) @ spread
            head[level] = 20 * unit / (unit @ means[-1]) + 3 * direction / direction.norm() / spread.norm(dim=1).max()
            for decoy, mean in zip(decoys, means[:-1]):
                head[level] += 5 * torch.randn((), generator=generator) * decoy / (decoy @ mean)


def chain_hidden(model: Any, inputs: Any, k: int) -> Any:
    """(N, k, H) hidden states the output layer gets at the last ``k`` positions of ``inputs``."""
    import torch

    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        with torch.inference_mode():
            model(**inputs, logits_to_keep=k, use_cache=False)
    finally:
        hook.remove()
    return seen[0][:, -k:].clone()
