"""Tokenizers and chat templates that behave like the real models' ones, built offline.

Where the level tokens are read depends on details a word-level test tokenizer hides: whether
a space before a digit is its own token, whether digits merge, what the template writes between
the opened assistant turn and the reply. The two tokenizer kinds here reproduce the real ones'
behaviour on exactly those points:

- ``byte_level``: byte-level BPE with isolated digits, as DeepSeek (Janus-Pro) and Qwen use.
  Text is split like GPT-2/Qwen pre-tokenizers do (a letter run with its leading space, one
  digit, a punctuation run, a whitespace run), so in ``": 7"`` the space is its own token
  ``"Ġ"`` and the digit another: the model writes the space first.
- ``metaspace``: sentencepiece-style ``"▁"`` tokenizer as Llama-2 (LLaVA-1.5) and Gemma use:
  spaces become ``"▁"`` glued to the next word, digits split off, so ``": 7"`` is ``":"``,
  ``"▁"``, ``"7"`` (the real Llama-2 tokenizer's 29871 ``"▁"`` before a number).

The BPE merges are learnt at build time from a small English corpus (the standards' wording),
so words are several tokens, as rare words are in the real vocabularies; every byte (byte-level)
or printable character (metaspace) is in the vocabulary, so nothing becomes unknown.

The chat templates are written here from each family's documented conversation format (the
same rendered text, not the real template's code): Janus-Pro, LLaVA-1.5, Qwen2.5-VL, Qwen3-VL.
"""

from __future__ import annotations

import string
from typing import Any, Literal

TokenizerKind = Literal["byte_level", "metaspace"]

CORPUS = (
    "You are a helpful assistant to help me evaluate the quality of the image. You will be given "
    "standards about each quality level. The quality standard is listed as follows: 7: Perfect, "
    "6: Excellent, 5: Good, 4: Fair, 3: Bad, 2: Poor, 1: Very Bad. The higher the image quality, "
    "the higher the score should be. Please strictly follow the USER's format, otherwise the result "
    "will be invalid. please evaluate the quality of the image and score in [1,2,3,4,5,6,7]. Only "
    "tell me the number. Do not analyze the image. Very Good, Awful. The quality of the image is "
    "excellent. system user assistant think Describe this picture in one sentence.\n\n"
)

# How GPT-2 / Qwen2 pre-tokenizers cut text (written from their documented behaviour): English
# contractions, an optional non-letter followed by letters, ONE digit, an optional space followed
# by a punctuation run (with trailing newlines), newline runs, whitespace not followed by a
# non-space, and any other whitespace. A space before a digit therefore stands alone.
BYTE_LEVEL_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _backend(kind: TokenizerKind, special_tokens: list[str], vocab_size: int) -> Any:
    """A ``tokenizers.Tokenizer`` of ``kind`` with BPE merges learnt from :data:`CORPUS`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    if kind == "byte_level":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(BYTE_LEVEL_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        backend.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    elif kind == "metaspace":
        backend = Tokenizer(models.BPE(unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
                pre_tokenizers.Digits(individual_digits=True),
            ]
        )
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        alphabet = [*string.printable.strip(), "▁"]
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    backend.train_from_iterator([CORPUS], trainer=trainer)
    return backend


def build_tokenizer(
    kind: TokenizerKind,
    specials: dict[str, str],
    extra_special: dict[str, str],
    chat_template: str,
    tokenizer_class: str = "PreTrainedTokenizerFast",
    vocab_size: int = 400,
) -> Any:
    """A transformers fast tokenizer of ``kind`` with the family's special tokens and template.

    ``specials`` maps the standard roles (bos_token, eos_token, pad_token, ...) to strings;
    ``extra_special`` names model-specific tokens (``image_token``...) the processors read as
    tokenizer attributes. A ``bos_token`` is written before every text, as Llama tokenizers do.
    ``tokenizer_class`` names the transformers class to wrap it in.
    """
    import transformers
    from tokenizers import AddedToken, processors

    special_tokens = list(dict.fromkeys(["<unk>", *specials.values(), *extra_special.values()]))
    backend = _backend(kind, special_tokens, vocab_size)
    if bos := specials.get("bos_token"):
        bos_id = backend.token_to_id(bos)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    tokenizer = getattr(transformers, tokenizer_class)(
        tokenizer_object=backend,
        model_input_names=["input_ids", "attention_mask"],  # as the real families' (no type ids)
        unk_token="<unk>",
        extra_special_tokens=extra_special,
        **specials,
    )
    tokenizer.add_tokens(
        [AddedToken(tok, special=True, normalized=False) for tok in special_tokens],
        special_tokens=True,
    )
    tokenizer.chat_template = chat_template
    return tokenizer


# ------------------------------------------------------------------ chat templates
# Messages carry content as a list of {"type": "image"} / {"type": "text", "text": ...} parts.

# Janus-Pro (DeepSeek's conversation format, as transformers' converted checkpoints render it):
# "<|User|>: <image_placeholder>\n{question}\n\n<|Assistant|>: {answer}<eos>"; the generation
# prompt stops at "<|Assistant|>:", so the reply's first character is a space.
JANUS_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|User|>: "
    "{% elif message['role'] == 'assistant' %}<|Assistant|>: "
    "{% else %}{{ message['role'] | capitalize }}: {% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image_placeholder>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] | trim }}{% endif %}"
    "{% endfor %}"
    # a newline right after a block tag would be trimmed (transformers renders with trim_blocks)
    "{% if message['role'] == 'assistant' %}<|end_of_sentence|>{% else %}{{ '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|>:{% endif %}"
)

# LLaVA-1.5 (Vicuna v1 format): "USER: <image>\n{question} ASSISTANT: {answer}</s>"; no system
# turn (raises, as several real templates do), generation prompt "ASSISTANT:".
LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %} "
    "{% else %}ASSISTANT: "
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

# ChatML turns with Qwen's vision markers, shared by the two Qwen templates.
_QWEN_PARTS = (
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}"
)

# Qwen2.5-VL: a default system turn when none is given; the assistant turn opens with
# "<|im_start|>assistant\n" and the reply follows directly.
QWEN2_5_VL_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n" + _QWEN_PARTS + "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL (thinking format): no default system turn; the final assistant reply is written after
# a thinking block ("<think>\n\n</think>\n\n" when empty). With enable_thinking=false the
# generation prompt writes the empty block itself, so the model answers at once; otherwise the
# model would think first.
QWEN3_VL_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' and loop.last %}<think>\n\n</think>\n\n{% endif %}"
    + _QWEN_PARTS
    + "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
