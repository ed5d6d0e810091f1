"""Tiny randomly initialised vision-language models of real architectures, for offline tests.

Each ``build_*`` function writes a model + processor directory with ``save_pretrained`` so a
scorer loads it by path through exactly the code path a user's downloaded model takes. The
tokenizer is built locally with the ``tokenizers`` library: a word-level vocabulary with the
digits as single tokens, the special tokens the architecture needs and a small Jinja chat
template in the style of the real model's. Weights are random (seeded), so scores mean
nothing; shapes, padding, prompt and token plumbing are what the models exercise.

The image-token expansion of each processor is configured to match its vision tower's output
length (Janus: (image_size / patch_size)^2; LLaVA: patches without CLS; Qwen2-VL: patches /
merge_size^2), the usual source of "image features and image tokens do not match".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = (
    "you are a helpful assistant to help me evaluate the quality of image will be given "
    "standards about each level is listed as follows perfect excellent good fair bad poor "
    "very higher score should please strictly follow user's format otherwise result invalid "
    "and in only tell number do not analyze system user"
).split()
PUNCT = (".", ",", ":", "[", "]", "!", "'", "-")
DIGITS = tuple(str(d) for d in range(10))

# Chat templates in the style of each family: what matters is where the system text, the image
# placeholder and the generation prompt go, and whether a system role is accepted.
JANUS_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|User|>: {% elif message['role'] == 'assistant' %}"
    "<|Assistant|>: {% else %}{{ message['role'] | capitalize }}: {% endif %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image_placeholder>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|>:{% endif %}"
)
# LLaVA-1.5 style, raising on a system turn as several real templates (Gemma, Mistral) do.
LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{{ message['role'] | upper }}: "
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }} {% endif %}"
    "{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(
    specials: dict[str, str],
    extra_special: dict[str, str],
    chat_template: str,
    tokenizer_class: str = "PreTrainedTokenizerFast",
) -> Any:
    """A word-level fast tokenizer: each word, punctuation mark and digit is one token.

    ``specials`` maps the standard roles (bos_token, eos_token, pad_token, ...) to strings;
    ``extra_special`` names model-specific tokens (``image_token``...) the processors read as
    tokenizer attributes. Unknown words map to ``<unk>``. ``tokenizer_class`` names the
    transformers class to wrap it in (see :func:`tokenizer_class_for`).
    """
    import transformers
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors

    special_tokens = list(dict.fromkeys(["<unk>", *specials.values(), *extra_special.values()]))
    vocab = {tok: i for i, tok in enumerate([*special_tokens, *DIGITS, *PUNCT, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    if bos := specials.get("bos_token"):  # like Llama tokenizers: BOS before every text
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    tokenizer = getattr(transformers, tokenizer_class)(
        tokenizer_object=backend,
        model_input_names=["input_ids", "attention_mask"],  # as the real families' (no type ids)
        unk_token="<unk>",
        extra_special_tokens=extra_special,
        **specials,
    )
    # ``add_tokens(special_tokens=True)`` is spelled the same in transformers 4 and 5 (the
    # ``add_special_tokens`` replace flag was renamed): the markers are never split or normalised.
    tokenizer.add_tokens(
        [AddedToken(tok, special=True, normalized=False) for tok in special_tokens],
        special_tokens=True,
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def tokenizer_class_for(processor_cls: type) -> str:
    """The tokenizer class a processor accepts: transformers 4 processors reject any tokenizer
    that is not their family's class (Janus: ``LlamaTokenizerFast``); transformers 5 ones check
    nothing, and its family classes rebuild their own pre-tokenizer, so the plain class is used."""
    wanted = getattr(processor_cls, "tokenizer_class", None)
    if isinstance(wanted, tuple):  # (slow, fast)
        wanted = wanted[-1]
    return wanted if wanted and not wanted.startswith("Auto") else "PreTrainedTokenizerFast"


def _text_dims(vocab_size: int) -> dict[str, int]:
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
    }


def _save(model: Any, processor: Any, out: Path) -> Path:
    out = Path(out)
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# Janus at test size: the real geometry (384 px images in 16 px patches -> 576 image tokens,
# which transformers 4's JanusProcessor hard-codes), tiny widths. "vocab_size": None = the tokenizer's.
JANUS_TINY: dict[str, dict[str, Any]] = {
    "text": {**_text_dims(0), "vocab_size": None},
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
    return _save(model, processor, out)


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
        **_text_dims(len(tokenizer)),
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
    return _save(model, processor, out)


def build_qwen2_vl(out: str | Path, seed: int = 0) -> Path:
    """Qwen2-VL: images resized to ~56x56 px, patch 14, merge 2 -> about 4 image tokens each.

    Token counts follow each image's aspect ratio, so a batch of differently shaped views has
    prompts of different lengths: that exercises left padding.
    """
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

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
        tokenizer_class_for(Qwen2VLProcessor),
    )
    patch, merge = 14, 2
    pixels = {
        "shortest_edge": 3 * 3 * (patch * merge) ** 2,
        "longest_edge": 4 * 4 * (patch * merge) ** 2,
    }
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config={
            **_text_dims(len(tokenizer)),
            # transformers 5 reads rope_parameters; transformers 4 reads rope_scaling + rope_theta
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
            },
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "rope_theta": 10000.0,
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": patch,
            "spatial_merge_size": merge,
            "temporal_patch_size": 2,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=pixels, patch_size=patch, merge_size=merge),
        video_processor=Qwen2VLVideoProcessor(size=pixels, patch_size=patch, merge_size=merge),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_TEMPLATE,
    )
    return _save(model, processor, out)
