"""Tiny random builds of the modern VLM families transformers supports natively, for offline tests.

Gemma 3, InternVL (``-hf``), SmolVLM / Idefics3 and LLaVA-OneVision: each ``build_*`` writes a
model + processor directory with ``save_pretrained`` so ``hf_vlm`` loads it by path exactly as it
loads a downloaded checkpoint. What must be real is what decides where the answer is read:

- the tokenizer behaves like the family's (:mod:`iqa_plugins.testing.tokenizers`): byte-level
  BPE with one token per digit (Qwen2 for InternVL and LLaVA-OneVision, SmolLM2 for SmolVLM) or
  sentencepiece-style ``▁`` pieces with split digits (Gemma);
- the chat template reproduces the family's real format (written from the format, not copied):
  where the system text, the image and the generation prompt go, and how an assistant reply is
  rendered (SmolVLM writes ``Assistant:`` as the prompt but ``Assistant: 7`` as a reply);
- each processor expands its image placeholder to as many tokens as the vision tower produces,
  and the variable-resolution families (InternVL tiles, Idefics3 splits, OneVision anyres) give
  views of different aspect ratios prompts of different lengths, so a batch needs padding or
  bucketing.

Weights are random (seeded); input and output embeddings are untied (real Gemma 3 and InternVL
tie them) so a test can teach a model its reply format with ``tiny_vlm.teach_reply``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iqa_plugins.testing.tiny_vlm import save_checkpoint as save
from iqa_plugins.testing.tiny_vlm import tiny_text_dims
from iqa_plugins.testing.tokenizers import build_tokenizer


def text_dims(vocab_size: int) -> dict[str, Any]:
    """The test-size language model with grouped-query attention and an explicit head size."""
    return {**tiny_text_dims(vocab_size), "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 4096}


# ------------------------------------------------------------------------------ Gemma 3

# <bos>, a system turn folded into the first user turn, "model" as the assistant's role; the
# generation prompt ends with a newline and the reply follows it directly.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(prefix='') %}"
    "{% set turns = messages %}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set ns.prefix = messages[0]['content'][0]['text'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% endif %}"
    "{% for message in turns %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if loop.first %}{{ ns.prefix }}{% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<start_of_image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] | trim }}{% endif %}"
    "{% endfor %}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def build_gemma3(out: str | Path, seed: int = 0) -> Path:
    """Gemma 3: SigLIP 32 px in 8 px patches (4x4) pooled to 4 soft tokens per image, a fixed
    count whatever the aspect ratio (the processor resizes to a square)."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    tokenizer = build_tokenizer(
        "metaspace",
        {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"},
        {
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
            "start_of_turn_token": "<start_of_turn>",
            "end_of_turn_token": "<end_of_turn>",
        },
        GEMMA3_TEMPLATE,
    )
    image_size, patch, tokens = 32, 8, 4
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3Config(
        text_config=Gemma3TextConfig(
            **text_dims(len(tokenizer)),
            sliding_window=64,
            tie_word_embeddings=False,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=[tokenizer.eos_token_id, ids("<end_of_turn>")],
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
            vision_use_head=False,
        ),
        mm_tokens_per_image=tokens,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():  # initialised to zeros, which would hide the image from the language model
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.5)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer,
        chat_template=GEMMA3_TEMPLATE,
        image_seq_length=tokens,
    )
    return save(model, processor, out)


# ------------------------------------------------------------------------------ InternVL

# ChatML as InternVL's -hf checkpoints write it: the image is "<IMG_CONTEXT>" on its own line at
# the start of the user turn (the processor expands it to <img> + tokens + </img>).
INTERNVL_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_internvl(out: str | Path, seed: int = 0) -> Path:
    """InternVL (-hf) on a Qwen2 language model: 32 px tiles in 8 px patches, pixel-shuffled by 0.5
    to 4 tokens per tile; up to 4 tiles chosen by aspect ratio plus a thumbnail, so views of
    different shapes get prompts of different lengths."""
    import torch
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        InternVLVisionConfig,
        Qwen2Config,
    )

    tokenizer = build_tokenizer(
        "byte_level",
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        {
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
            "im_start_token": "<|im_start|>",
        },
        INTERNVL_TEMPLATE,
    )
    tile, patch, tokens = 32, 8, 4
    text = Qwen2Config(
        **text_dims(len(tokenizer)),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config = InternVLConfig(
        vision_config=InternVLVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=[tile, tile],
            patch_size=[patch, patch],
        ),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=tokens,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config)
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(
            size={"height": tile, "width": tile}, crop_to_patches=True, min_patches=1, max_patches=4
        ),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(size={"height": tile, "width": tile}),
        image_seq_length=tokens,
        chat_template=INTERNVL_TEMPLATE,
    )
    return save(model, processor, out)


# ------------------------------------------------------------------------- SmolVLM / Idefics3

# SmolVLM's format: one "<|im_start|>" opens the conversation, each turn is "Role:" followed by a
# space unless an image comes first, and ends with "<end_of_utterance>\n". The generation prompt
# is "Assistant:" but a reply is rendered "Assistant: 7": the reply starts with a space.
SMOLVLM_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'][0]['type'] != 'image' %} {% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_idefics3(out: str | Path, seed: int = 0) -> Path:
    """SmolVLM (Idefics3ForConditionalGeneration, SmolLM2-style tokenizer and template): views are
    resized to a 64 px longest edge and split into 32 px tiles plus a global image; each tile is
    8 px patches pixel-shuffled by 2 to 4 tokens, so the token count follows the aspect ratio."""
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        Idefics3VisionConfig,
        LlamaConfig,
    )

    tile, patch, scale = 32, 8, 2
    grid = [f"<row_{r}_col_{c}>" for r in (1, 2) for c in (1, 2)]
    tokenizer = build_tokenizer(
        "byte_level",
        {"eos_token": "<end_of_utterance>", "pad_token": "<|endoftext|>"},
        {
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
            "im_start_token": "<|im_start|>",
            **{f"grid_token_{i}": tok for i, tok in enumerate(grid)},
        },
        SMOLVLM_TEMPLATE,
    )
    text = LlamaConfig(
        **text_dims(len(tokenizer)),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=tile,
            patch_size=patch,
        ),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(
            size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile}, do_image_splitting=True
        ),
        tokenizer=tokenizer,
        image_seq_len=(tile // patch) ** 2 // scale**2,
        chat_template=SMOLVLM_TEMPLATE,
    )
    return save(model, processor, out)


# ------------------------------------------------------------------------- LLaVA-OneVision

# ChatML as the llava-hf OneVision checkpoints write it: each image as "<image>\n" at the start of
# its turn, then the text; no default system turn; the reply follows "<|im_start|>assistant\n".
LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] if part['type'] == 'image' %}<image>\n{% endfor %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_llava_onevision(out: str | Path, seed: int = 0) -> Path:
    """LLaVA-OneVision (SigLIP + Qwen2): 32 px base image in 8 px patches (16 tokens) plus
    "anyres" tiles on a grid of 32/64 px pinpoints, unpadded to the view's aspect ratio with a
    newline token per row, so token counts follow the view's shape."""
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )

    tile, patch = 32, 8
    pinpoints = [[tile, tile], [tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile]]
    tokenizer = build_tokenizer(
        "byte_level",
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        {"image_token": "<image>", "video_token": "<video>", "im_start_token": "<|im_start|>"},
        LLAVA_ONEVISION_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=tile,
            patch_size=patch,
            vision_use_head=False,
        ),
        text_config=Qwen2Config(
            **text_dims(len(tokenizer)),
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=ids("<image>"),
        video_token_index=ids("<video>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(
            size={"height": tile, "width": tile}, image_grid_pinpoints=pinpoints
        ),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size={"height": tile, "width": tile}),
        num_image_tokens=(tile // patch) ** 2,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_TEMPLATE,
    )
    return save(model, processor, out)
