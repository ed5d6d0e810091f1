"""Check that tests/data/mplug_owl3_240728/README.md says enough: its processor and model facts,
written again in plain torch (transformers 5 only loads the tokenizer), must give what the original
240728 code recorded. Evidence for the fixture, not a CI dependency and not a scorer (the project's
own implementation lives in plugins/scorers/mplug_owl3/). One conversation at a time; no batch.

    .venv/bin/python tools/mplug_owl3_reference/check_readme.py [tests/data/mplug_owl3_240728]

Prints one line per case: every flag True, and the largest differences of the image embeddings and
the logits (0 on the recording CPU, ~1e-6 elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerFast

ANCHORS = [(2, 2), (1, 3), (1, 4), (3, 1), (4, 1), (2, 3), (3, 2)]  # (rows, cols), README item 16


def cut_grid(w: int, h: int, size: int) -> tuple[int, int]:
    """README item 18: shape IoU (int-truncated shape box) x 100 + resolution IoU, first maximum."""
    a = torch.tensor([[0, 0, c * size, r * size] for r, c in ANCHORS])
    area = a[:, 2] * a[:, 3]
    inter = torch.minimum(a[:, 2], torch.tensor(w)) * torch.minimum(a[:, 3], torch.tensor(h))
    resolution = inter / (area + w * h - inter + 1e-5)
    shape_box = a.clone()
    shape_box[:, 3] = h / w * a[:, 2]
    inter = a[:, 2] * torch.minimum(a[:, 3], shape_box[:, 3])
    shape = inter / (area + a[:, 2] * shape_box[:, 3] - inter + 1e-5)
    return ANCHORS[int(torch.argmax(shape * 100 + resolution))]


def normalised(img: Image.Image) -> torch.Tensor:
    return (torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 - 0.5) / 0.5


def prompt(messages: list[dict[str, str]], rows: int, cols: int) -> str:
    """README items 20 and 22."""
    cut = (
        f"Cut to {rows} rows {cols} columns with a global view\n"
        + "\n".join(" ".join(f"subimg({i},{j})<|image|>" for j in range(cols)) for i in range(rows))
        + "\nglobal_view<|image|>"
    )
    text = "" if messages[0]["role"] == "system" else "<|im_start|>system\n<|im_end|>"
    for m in messages:
        if m["role"] == "system":
            text += f"<|im_start|>system\n{m['content']}<|im_end|>"
        elif m["role"] == "user":
            text += "\n<|im_start|>user\n" + m["content"].replace("<|image|>", cut) + "<|im_end|>"
        else:
            text += "\n<|im_start|>assistant\n"
    return text


def process(tok: Any, img: Image.Image, size: int, messages: list[dict[str, str]]) -> dict[str, Any]:
    """README items 9, 19-24: prompt text, ids, media_offset, pixel values."""
    rows, cols = cut_grid(*img.size, size)
    big = normalised(img.resize((cols * size, rows * size), Image.BICUBIC))
    crops = [big[:, i * size : (i + 1) * size, j * size : (j + 1) * size] for i in range(rows) for j in range(cols)]
    text = prompt(messages, rows, cols)
    ids = torch.tensor([tok(text).input_ids])
    is_image = (ids[0] == tok.convert_tokens_to_ids("<|image|>")).long()
    before = torch.cumsum(is_image, 0) - is_image
    return {
        "text": text,
        "grid": [rows, cols],
        "input_ids": ids,
        "media_offset": torch.stack([torch.zeros_like(before), before], -1)[None],
        "pixel_values": torch.stack([*crops, normalised(img.resize((size, size), Image.BICUBIC))]),
    }


class Model:
    """README items 1-15, for one conversation."""

    def __init__(self, folder: Path) -> None:
        self.cfg = json.loads((folder / "config.json").read_text())
        self.w = load_file(folder / "model.safetensors")

    def lin(self, x: torch.Tensor, name: str, bias: bool = True) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias") if bias else None)

    def rms(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return self.w[name] * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg["rms_norm_eps"]))

    def rope(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        dim = x.shape[-1]
        inv = 1.0 / (self.cfg["rope_theta"] ** (torch.arange(0, dim, 2).float() / dim))
        freqs = pos.float()[..., None] * inv
        emb = torch.cat([freqs, freqs], -1)
        rotated = torch.cat([-x[..., dim // 2 :], x[..., : dim // 2]], -1)
        return x * emb.cos() + rotated * emb.sin()

    def image_embeds(self, pv: torch.Tensor) -> torch.Tensor:
        v, p = self.cfg["vision_config"], "vision_model."
        x = F.conv2d(
            pv,
            self.w[p + "embeddings.patch_embedding.weight"],
            self.w[p + "embeddings.patch_embedding.bias"],
            stride=v["patch_size"],
        )
        x = x.flatten(2).transpose(1, 2) + self.w[p + "embeddings.position_embedding.weight"]
        heads = v["num_attention_heads"]
        hd = v["hidden_size"] // heads
        for i in range(v["num_hidden_layers"] - 1):  # hidden_states[-2]: the last layer is skipped
            q = f"{p}encoder.layers.{i}."
            y = F.layer_norm(x, (x.shape[-1],), self.w[q + "layer_norm1.weight"], self.w[q + "layer_norm1.bias"], 1e-6)
            qq, kk, vv = (
                self.lin(y, f"{q}self_attn.{n}_proj").view(*y.shape[:2], heads, hd).transpose(1, 2) for n in "qkv"
            )
            att = torch.softmax(qq @ kk.transpose(-1, -2) * hd**-0.5, -1) @ vv
            x = x + self.lin(att.transpose(1, 2).reshape(y.shape), q + "self_attn.out_proj")
            y = F.layer_norm(x, (x.shape[-1],), self.w[q + "layer_norm2.weight"], self.w[q + "layer_norm2.bias"], 1e-6)
            x = x + self.lin(F.gelu(self.lin(y, q + "mlp.fc1"), approximate="tanh"), q + "mlp.fc2")
        return self.lin(x, "vision2text_model")

    def last_logits(self, ids: torch.Tensor, media_offset: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        heads, kv_heads, hidden = c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"]
        hd, rep, n = hidden // heads, heads // kv_heads, ids.shape[1]
        views, per_view = embeds.shape[:2]
        offset = media_offset[0, :, 1] - media_offset[0, -1, 0]
        visual_pos = ((offset[1:] != offset[:-1]).nonzero().squeeze(1) + 1)[:, None].expand(-1, per_view)
        shift = int((offset != 0).nonzero()[0])
        sees = (torch.arange(views)[None] < offset[shift:, None]).repeat_interleave(per_view, 1)
        pos = torch.arange(n)
        x = self.w["language_model.model.embed_tokens.weight"][ids[0]]
        for i in range(c["num_hidden_layers"]):
            p = f"language_model.model.layers.{i}."
            y = self.rms(x, p + "input_layernorm.weight")
            q = self.rope(self.lin(y, p + "self_attn.q_proj").view(n, heads, hd).transpose(0, 1), pos)
            k = self.rope(self.lin(y, p + "self_attn.k_proj").view(n, kv_heads, hd).transpose(0, 1), pos)
            v = self.lin(y, p + "self_attn.v_proj").view(n, kv_heads, hd).transpose(0, 1)
            ctx = (
                F.scaled_dot_product_attention(
                    q[None], k.repeat_interleave(rep, 0)[None], v.repeat_interleave(rep, 0)[None], is_causal=True
                )[0]
                .transpose(0, 1)
                .reshape(n, hidden)
            )
            if (i + 1) in c["hyper_layers"]:
                kv = self.lin(self.rms(embeds, p + "input_layernorm.weight"), p + "self_attn.v_kv_proj")
                kv = kv.view(views, per_view, kv_heads, 2, hd)
                vk = self.rope(kv[..., 0, :].permute(2, 0, 1, 3), visual_pos).reshape(kv_heads, -1, hd)
                vv = kv[..., 1, :].permute(2, 0, 1, 3).reshape(kv_heads, -1, hd)
                vis = (
                    F.scaled_dot_product_attention(
                        q[:, shift:][None],
                        vk.repeat_interleave(rep, 0)[None],
                        vv.repeat_interleave(rep, 0)[None],
                        attn_mask=sees,
                    )[0]
                    .transpose(0, 1)
                    .reshape(-1, hidden)
                )
                g = torch.sigmoid(self.lin(ctx.view(n, heads, hd), p + "self_attn.gate_proj.0")).reshape(n, hidden)
                ctx = torch.cat([ctx[:shift], ctx[shift:] * (1 - g[shift:]) + vis * g[shift:]])
            x = x + self.lin(ctx, p + "self_attn.o_proj", bias=False)
            y = self.rms(x, p + "post_attention_layernorm.weight")
            gate = F.silu(self.lin(y, p + "mlp.gate_proj", False)) * self.lin(y, p + "mlp.up_proj", False)
            x = x + self.lin(gate, p + "mlp.down_proj", False)
        x = self.rms(x, "language_model.model.norm.weight")
        return F.linear(x[-1:], self.w["language_model.lm_head.weight"])


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/mplug_owl3_240728")
    record = json.loads((folder / "cases.json").read_text())
    tensors = load_file(folder / "cases.safetensors")
    tok = PreTrainedTokenizerFast.from_pretrained(folder)
    model = Model(folder)
    size = model.cfg["vision_config"]["image_size"]
    for name, case in record["cases"].items():
        got = process(tok, Image.open(folder / case["image"]).convert("RGB"), size, case["messages"])
        embeds = model.image_embeds(got["pixel_values"])
        logits = model.last_logits(got["input_ids"], got["media_offset"], embeds)
        same = [got["text"] == case["prompt_text"], got["grid"] == case["grid_rows_cols"]]
        same += [torch.equal(got[k], tensors[f"{name}.{k}"]) for k in ("input_ids", "media_offset", "pixel_values")]
        embeds_diff = float((embeds - tensors[f"{name}.image_embeds"]).abs().max())
        logits_diff = float((logits - tensors[f"{name}.logits"]).abs().max())
        print(name, *same, f"embeds {embeds_diff:.1e} logits {logits_diff:.1e}")
    for name, case in record["real_processor_cases"].items():
        got = process(tok, Image.open(folder / case["image"]).convert("RGB"), 384, case["messages"])
        u8 = torch.round((got["pixel_values"] * 0.5 + 0.5) * 255).to(torch.uint8)
        same = [got["text"] == case["prompt_text"], got["grid"] == case["grid_rows_cols"]]
        same += [torch.equal(got[k], tensors[f"real.{name}.{k}"]) for k in ("input_ids", "media_offset")]
        same += [hashlib.sha256(u8.numpy().tobytes()).hexdigest() == case["pixels_u8_sha256"]]
        print("real", name, *same)


if __name__ == "__main__":
    main()
