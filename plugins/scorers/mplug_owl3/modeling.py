"""mPLUG-Owl3 (240728) on transformers 5 building blocks: Qwen2 decoder, SigLIP vision.

    crops -> SigLIP (its second-to-last layer's output) -> projector -> image embeddings
    text ids -> Qwen2 decoder; in the hyper layers the text queries also attend to the
    image embeddings (hyper attention), gated per head, before ``o_proj``

Image tokens stay text tokens: the image enters only through hyper attention. The facts this
follows (layer choice, shared norm, K/V layout, MI-RoPE, masks, gate) are listed with their
source in ``tests/data/mplug_owl3_240728/README.md`` and checked against the original code's
outputs in ``tests/plugins/test_mplug_owl3_faithful.py``.

``media_offset`` ([B, L, 2]) is the original processor's description of where the images are:
column 0 is the index of the row's first view in the batch's image embeddings, column 1 that
plus the number of ``<|image|>`` tokens strictly before each position.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.qwen2.modeling_qwen2 import (
    Qwen2Attention,
    Qwen2DecoderLayer,
    Qwen2Model,
    apply_rotary_pos_emb,
    eager_attention_forward,
    repeat_kv,
    rotate_half,
)
from transformers.models.siglip.modeling_siglip import SiglipEncoder, SiglipVisionEmbeddings

from iqa_plugins.scorers.mplug_owl3.config import Owl3Config

NO_IMAGE = -1_000_000
"""Column 1 of ``media_offset`` for a conversation without images (the original's marker)."""


@dataclass
class Visual:
    """Each row's image embeddings, where its views sit and what each position may see."""

    embeds: torch.Tensor  # [B, V, P, H] projector output, rows padded to V views
    positions: torch.Tensor  # [B, V] RoPE position of each view's keys: its <|image|> index + 1
    seen: torch.Tensor  # [B, L] views a position attends to (<|image|> tokens before it)

    @classmethod
    def arrange(cls, image_embeds: torch.Tensor, media_offset: torch.Tensor) -> Visual:
        """Gather each row's views from the flat ``image_embeds`` [views, P, H]."""
        first = media_offset[:, -1, 0]
        seen = (media_offset[..., 1] - media_offset[..., 0]).clamp(min=0)
        count = seen[:, -1]
        width = max(int(count.max()), 1)
        slot = torch.arange(width, device=seen.device)
        index = (first[:, None] + slot).clamp(max=max(image_embeds.shape[0] - 1, 0))
        embeds = image_embeds[index] * (slot[None] < count[:, None])[..., None, None].to(image_embeds.dtype)
        positions = (seen[:, None, :] <= slot[None, :, None]).sum(-1)  # first index seeing view k+1
        return cls(embeds, positions, seen)


def mi_rope(keys: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE of every visual key at its view's one position, in float32.

    ``keys`` [B, KV, V, P, D], ``positions`` [B, V]. The original rotates the keys themselves
    in fp32 and casts back (unlike the text RoPE, whose cos/sin are cast to the key dtype).
    """
    freqs = positions.float()[..., None] * inv_freq.float()  # [B, V, D/2]
    emb = torch.cat([freqs, freqs], -1)[:, None, :, None, :]
    k = keys.float()
    return (k * emb.cos() + rotate_half(k) * emb.sin()).to(keys.dtype)


class HyperAttention(Qwen2Attention):
    """Qwen2 self-attention plus gated, non-causal attention from the text to the image."""

    def __init__(self, config: Any, layer_idx: int) -> None:
        super().__init__(config, layer_idx)
        kv = config.num_key_value_heads * self.head_dim
        self.v_kv_proj = nn.Linear(config.hidden_size, 2 * kv, bias=True)  # per KV head: K then V
        self.gate = nn.Linear(self.head_dim, self.head_dim, bias=True)  # one for all heads

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        visual: Visual | None = None,
        normed_images: torch.Tensor | None = None,
        inv_freq: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        shape = hidden_states.shape[:-1]
        heads = (*shape, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(heads).transpose(1, 2)
        k = self.k_proj(hidden_states).view(heads).transpose(1, 2)
        v = self.v_proj(hidden_states).view(heads).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *position_embeddings)
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        text, _ = attend(self, q, k, v, attention_mask, dropout=0.0, scaling=self.scaling, **kwargs)  # [B, L, H, D]
        if visual is not None and normed_images is not None:
            text = self.mix(text, q, visual, normed_images, inv_freq)
        return self.o_proj(text.reshape(*shape, -1).contiguous()), None

    def mix(
        self, text: torch.Tensor, q: torch.Tensor, visual: Visual, images: torch.Tensor, inv_freq: torch.Tensor
    ) -> torch.Tensor:
        """``text`` [B, L, H, D] mixed with attention over the image by the sigmoid gate;
        positions that see no view (up to the first ``<|image|>``, pads) keep ``text``."""
        b, v, p, _ = images.shape
        kv = self.v_kv_proj(images).view(b, v, p, -1, 2, self.head_dim).permute(0, 3, 1, 2, 4, 5)
        keys = mi_rope(kv[..., 0, :], visual.positions, inv_freq).flatten(2, 3)  # [B, KV, V*P, D]
        values = kv[..., 1, :].flatten(2, 3)
        keys, values = repeat_kv(keys, self.num_key_value_groups), repeat_kv(values, self.num_key_value_groups)
        slot = torch.arange(v, device=q.device)
        sees = slot[None, None, :] < visual.seen[:, :, None]  # [B, L, V]
        sees = sees | ((visual.seen[:, :, None] == 0) & (slot == 0))  # a row seeing nothing: discarded below
        mask = sees.repeat_interleave(p, dim=-1)[:, None]  # [B, 1, L, V*P]
        image = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask).transpose(1, 2)
        g = torch.sigmoid(self.gate(text))
        mixed = text * (1 - g) + image.to(text.dtype) * g
        return torch.where((visual.seen > 0)[:, :, None, None], mixed, text)


class HyperDecoderLayer(Qwen2DecoderLayer):
    """A Qwen2 decoder layer whose attention also reads the image, through this layer's own
    ``input_layernorm`` (the image embeddings are normed with the text's weights)."""

    def __init__(self, config: Any, layer_idx: int) -> None:
        super().__init__(config, layer_idx)
        self.self_attn = HyperAttention(config, layer_idx)

    def forward(self, hidden_states: torch.Tensor, visual: Visual | None = None, **kwargs: Any) -> torch.Tensor:
        if visual is not None:
            kwargs["normed_images"] = self.input_layernorm(visual.embeds)
        return super().forward(hidden_states, visual=visual, **kwargs)


@dataclass
class Output:
    logits: torch.Tensor


class MPlugOwl3(nn.Module):
    """The 240728 model for scoring: image embeddings, the hyper-attention decoder, the LM head.

    Parameter names are this module's own; :mod:`.checkpoint` maps the Hub checkpoint's names
    onto them.
    """

    def __init__(self, config: Owl3Config) -> None:
        super().__init__()
        self.config = config
        tower = copy.deepcopy(config.vision)
        tower.num_hidden_layers -= 1  # the scoring path reads hidden_states[-2]: the last layer is unused
        self.vision = nn.ModuleDict(
            {"embeddings": SiglipVisionEmbeddings(config.vision), "encoder": SiglipEncoder(tower)}
        )
        self.projector = nn.Linear(config.vision.hidden_size, config.text.hidden_size)
        self.text = Qwen2Model(config.text)
        for i in config.hyper_layers:
            self.text.layers[i] = HyperDecoderLayer(config.text, i)
        self.lm_head = nn.Linear(config.text.hidden_size, config.text.vocab_size, bias=False)

    def forward_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[views, 3, S, S] crops -> [views, patches, hidden] image embeddings."""
        x = self.vision["embeddings"](pixel_values.to(self.projector.weight.dtype))
        return self.projector(self.vision["encoder"](inputs_embeds=x).last_hidden_state)

    def forward(
        self,
        input_ids: torch.Tensor,
        media_offset: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        **_: Any,
    ) -> Output:
        """Logits of the last ``logits_to_keep`` positions (all if 0). Positions are indices in
        the (left-padded) row, for the text and the visual keys alike, so a padded row scores
        as it would alone."""
        hidden = self.hidden_states(input_ids, media_offset, pixel_values, image_embeds, attention_mask)
        return Output(self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden).float())

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        media_offset: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The decoder's last hidden states [B, L, hidden] (after the final norm)."""
        if image_embeds is None and pixel_values is not None and len(pixel_values):
            image_embeds = self.forward_image(pixel_values)
        visual = None
        if image_embeds is not None and bool((media_offset[:, -1, 1] > media_offset[:, -1, 0]).any()):
            visual = Visual.arrange(image_embeds, media_offset)
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        return self.text(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
            visual=visual,
            inv_freq=self.text.rotary_emb.inv_freq,
        ).last_hidden_state

    def generate(
        self,
        input_ids: torch.Tensor,
        media_offset: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 8,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """Greedy answers, prompt + new tokens (rows that ended padded with ``pad_token_id``).

        No key/value cache: an answer is a few tokens, and the images are embedded once.
        Stops at the config's ``eos_token_id`` (``<|im_end|>``) unless given another.
        """
        eos_token_id = self.config.text.eos_token_id if eos_token_id is None else eos_token_id
        image_embeds = self.forward_image(pixel_values) if pixel_values is not None and len(pixel_values) else None
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            logits = self(input_ids, media_offset, None, image_embeds, attention_mask, logits_to_keep=1).logits
            new = logits[:, -1].argmax(-1)
            if pad_token_id is not None:
                new = torch.where(done, torch.full_like(new, pad_token_id), new)
            input_ids = torch.cat([input_ids, new[:, None]], 1)
            attention_mask = torch.cat([attention_mask, (~done).long()[:, None]], 1)
            media_offset = torch.cat([media_offset, media_offset[:, -1:]], 1)
            if eos_token_id is not None:
                done |= new == eos_token_id
                if bool(done.all()):
                    break
        return input_ids
