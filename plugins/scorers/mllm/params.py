"""Parameters every MLLM scorer shares, and those of the chat-template scorers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from iqa_core.api import Params


class MLLMParams(Params):
    """Parameters every MLLM scorer shares."""

    model: str
    revision: str | None = None
    local_files_only: bool = False
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(default=8, ge=1)
    batch_tokens: int | None = Field(
        default=None,
        ge=1,
        description="at most this many prompt tokens (view_tokens) in one batch, filled by the engine "
        "with views of similar length; null: only batch_size counts",
    )
    pad_slack: int = Field(
        default=0,
        ge=0,
        description="views whose prompts differ by at most this many tokens share one left-padded "
        "forward pass; 0: only equal-length prompts, so a view's scores never depend on its batch",
    )
    answer: Literal["level_token", "generate"] = "level_token"
    max_new_tokens: int = Field(default=8, ge=1)
    attn_implementation: str | dict[str, str] | None = Field(
        default=None,
        description="transformers' attention for from_pretrained, for the whole model or per part "
        "(e.g. {vision_config: flash_attention_2, text_config: sdpa}); null: SDPA on CUDA, else the default",
    )


class ChatParams(MLLMParams):
    """Parameters of the scorers that build their prompt with the model's chat template."""

    template_options: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments for apply_chat_template, e.g. {enable_thinking: false} for Qwen3",
    )
    answer_stem: str = Field(
        default="",
        description="text written after the assistant turn's opening, before the level label "
        "(e.g. 'The quality of the image is '); end it as the model would before the label",
    )
