"""What make_fixture.py records per case, computed by the ORIGINAL 240728 processor and model.

Each function fills ``tensors`` (saved to cases.safetensors under ``<case>.<key>``) and returns the
case's JSON record. The keys are described in tests/data/mplug_owl3_240728/README.md.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from PIL import Image


def run_processor(processor: Any, messages: list[dict[str, str]], image: Image.Image) -> dict[str, Any]:
    """The original processor on one conversation, plus what it keeps to itself (text, cut grid)."""
    msgs = [dict(m) for m in messages]  # the processor rewrites contents in place
    inputs = processor(msgs, images=[image], videos=None)
    cut = processor.image_processor.preprocess([image])["cut_shape"]
    text = "".join(chunk["text"] for chunk in processor.build_text_qwen(msgs))
    return {"inputs": inputs, "cut_shape": [list(c) for c in cut], "prompt_text": text}


def last_logits(
    model: Any, input_ids: torch.Tensor, media_offset: torch.Tensor, image_embeds: torch.Tensor, **kwargs: Any
) -> torch.Tensor:
    """The project's scoring path: hyper-attention LM with image embeds, lm_head on the last position."""
    with torch.inference_mode():
        hidden = model.language_model.model(
            input_ids=input_ids,
            image_embeds=image_embeds,
            media_offset=media_offset,
            use_cache=False,
            return_dict=True,
            **kwargs,
        ).last_hidden_state
        return model.language_model.lm_head(hidden[:, -1, :]).float()


def uint8_of(pixel_values: torch.Tensor) -> torch.Tensor:
    """The uint8 picture a normalised crop came from; raises unless the round trip is exact."""
    u8 = torch.round((pixel_values * 0.5 + 0.5) * 255).clamp(0, 255).to(torch.uint8)
    back = (u8.float() / 255 - 0.5) / 0.5
    assert torch.equal(back, pixel_values), "pixel values are not (u8/255-0.5)/0.5"
    return u8


def sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def grid_counterfactuals(processor: Any, image: Image.Image) -> dict[str, list[int]]:
    """The grids the original's cut rule would pick with one of its details changed, to show which
    cases test that detail: the shape box's height kept as a float (``anchor_rank`` writes it into an
    int64 copy of the anchors, truncating it), or the shape IoU alone (no resolution term)."""
    from torchvision.ops.boxes import box_area

    image_processor = processor.image_processor
    module = sys.modules[type(image_processor).__module__]
    anchors = image_processor.resizer.anchors
    h, w = image.size[1], image.size[0]
    floats = anchors.float()
    untruncated = module.anchor_rank(floats, box_area(floats), (h, w))
    shape_box = anchors.clone()
    shape_box[:, 3] = h / w * anchors[:, 2]
    shape_iou = module.box_iou(anchors, image_processor.resizer.anchor_areas, shape_box)[0].diag()
    grid = image_processor.anchors
    return {
        "shape_box_height_not_truncated": list(grid[int(untruncated)]),
        "shape_iou_alone": list(grid[int(shape_iou.argmax())]),
    }


def processed_record(
    res: dict[str, Any],
    tokenizer: Any,
    image_file: str,
    image: Image.Image,
    messages: list[dict[str, str]],
    processor: Any,
) -> dict[str, Any]:
    """What both processors' cases share: prompt, ids, cut grid, where the image tokens are."""
    ids = res["inputs"]["input_ids"]
    image_id = tokenizer.convert_tokens_to_ids("<|image|>")
    return {
        "image": image_file,
        "image_size_wh": list(image.size),
        "messages": messages,
        "prompt_text": res["prompt_text"],
        "cut_shape": res["cut_shape"],
        "grid_rows_cols": res["cut_shape"][0],
        "grid_if": grid_counterfactuals(processor, image),
        "num_views": len(res["inputs"]["pixel_values"]),
        "seq_len": ids.shape[1],
        "image_token_positions": (ids[0] == image_id).nonzero().squeeze(1).tolist(),
        "whole_text_tokenizes_the_same": tokenizer(res["prompt_text"]).input_ids == ids[0].tolist(),
    }


def hidden_states(model: Any, inputs: Any, image_embeds: torch.Tensor) -> torch.Tensor:
    """(num_layers + 1, L, hidden): the embeddings, each decoder layer's output, the last one after the final norm."""
    with torch.inference_mode():
        out = model.language_model.model(
            input_ids=inputs["input_ids"],
            image_embeds=image_embeds,
            media_offset=inputs["media_offset"],
            use_cache=False,
            output_hidden_states=True,
            return_dict=True,
        )
    return torch.cat(out.hidden_states)


def tiny_case(
    name: str,
    image_file: str,
    messages: list[dict[str, str]],
    image: Image.Image,
    processor: Any,
    model: Any,
    tokenizer: Any,
    tensors: dict[str, torch.Tensor],
    keep_hidden_states: bool = False,
) -> dict[str, Any]:
    """One conversation through the tiny processor and model: inputs, image embeds, last logits."""
    res = run_processor(processor, messages, image)
    inputs = res["inputs"]
    embeds = model.forward_image(inputs["pixel_values"])
    logits = last_logits(model, inputs["input_ids"], inputs["media_offset"], embeds)
    found = {
        "input_ids": inputs["input_ids"],
        "media_offset": inputs["media_offset"],
        "pixel_values": inputs["pixel_values"],
        "image_embeds": embeds,
        "logits": logits,
    }
    if keep_hidden_states:
        found["hidden_states"] = hidden_states(model, inputs, embeds)
    for key, value in found.items():
        tensors[f"{name}.{key}"] = value.clone()
    record = processed_record(res, tokenizer, image_file, image, messages, processor)
    record["shapes"] = {k: list(v.shape) for k, v in found.items()}
    record["dtypes"] = {k: str(v.dtype).removeprefix("torch.") for k, v in found.items()}
    record["logits_top5"] = logits[0].topk(5).indices.tolist()
    return record


def real_case(
    name: str,
    image_file: str,
    messages: list[dict[str, str]],
    image: Image.Image,
    processor: Any,
    tokenizer: Any,
    tensors: dict[str, torch.Tensor],
) -> dict[str, Any]:
    """The real-size processor (384 px): ids, offsets and the exact pixels as uint8 checksums."""
    res = run_processor(processor, messages, image)
    inputs = res["inputs"]
    u8 = uint8_of(inputs["pixel_values"])
    tensors[f"real.{name}.input_ids"] = inputs["input_ids"].clone()
    tensors[f"real.{name}.media_offset"] = inputs["media_offset"].clone()
    tensors[f"real.{name}.pixels_u8_every16"] = u8[:, :, ::16, ::16].clone()
    record = processed_record(res, tokenizer, image_file, image, messages, processor)
    record["pixel_values_shape"] = list(inputs["pixel_values"].shape)
    record["pixels_u8_sha256"] = sha256(u8)
    record["pixels_u8_sha256_per_view"] = [sha256(v) for v in u8]
    record["pixel_values_sum_per_view"] = inputs["pixel_values"].double().sum(dim=(1, 2, 3)).tolist()
    return record


def batch_case(names: list[str], tensors: dict[str, torch.Tensor], model: Any, pad_id: int) -> dict[str, Any]:
    """A left-padded batch built by hand (the original processor takes one conversation) and run
    through the original model, against each conversation's own logits."""
    ids = [tensors[f"{n}.input_ids"][0] for n in names]
    offsets = [tensors[f"{n}.media_offset"][0] for n in names]
    longest = max(len(i) for i in ids)
    input_ids = torch.full((len(names), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(names), longest), dtype=torch.long)
    media_offset = torch.zeros((len(names), longest, 2), dtype=torch.long)
    before = 0
    for row, (i, mo, n) in enumerate(zip(ids, offsets, names)):
        pad = longest - len(i)
        input_ids[row, pad:] = i
        mask[row, pad:] = 1
        media_offset[row] = before  # pads: relative offset 0, before the first image: no hyper attention
        media_offset[row, pad:] = mo + before
        before += tensors[f"{n}.image_embeds"].shape[0]
    embeds = torch.cat([tensors[f"{n}.image_embeds"] for n in names])
    single = torch.cat([tensors[f"{n}.logits"] for n in names])
    padded_positions = last_logits(model, input_ids, media_offset, embeds, attention_mask=mask)
    unpadded = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # the original prepare_inputs_for_generation rule
    gen_positions = last_logits(model, input_ids, media_offset, embeds, attention_mask=mask, position_ids=unpadded)
    found = {
        "input_ids": input_ids,
        "attention_mask": mask,
        "media_offset": media_offset,
        "image_embeds": embeds,
        "logits": padded_positions,
        "logits_generate_positions": gen_positions,
    }
    for key, value in found.items():
        tensors[f"batch.{key}"] = value.clone()
    return {
        "rows": names,
        "pad_token_id": pad_id,
        "shapes": {k: list(v.shape) for k, v in found.items()},
        "max_abs_diff_vs_single": {
            "logits (position_ids default: arange over the padded row)": float((padded_positions - single).abs().max()),
            "logits_generate_positions (position_ids = cumsum(mask)-1)": float((gen_positions - single).abs().max()),
        },
    }


@contextmanager
def patched(obj: Any, attr: str, value: Any) -> Iterator[None]:
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        setattr(obj, attr, old)


class OneMinus(torch.nn.Module):
    """1 - gate: the gate's two sides swapped."""

    def __init__(self, gate: torch.nn.Module) -> None:
        super().__init__()
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1 - self.gate(x)


def kv_outer_permutation(model: Any) -> Callable[[], None]:
    """Permute every v_kv_proj so the original's per-head (H KV D) reading of the new weights equals a
    (KV H D) reading of the old ones; returns the undo."""
    cfg = model.config
    heads, dim = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    src = torch.tensor([(kv * heads + h) * dim + d for h in range(heads) for kv in range(2) for d in range(dim)])
    saved = []
    for module in model.modules():
        if hasattr(module, "v_kv_proj"):
            lin = module.v_kv_proj
            saved.append((lin, lin.weight.data.clone(), lin.bias.data.clone()))
            lin.weight.data = lin.weight.data[src].clone()
            lin.bias.data = lin.bias.data[src].clone()

    def undo() -> None:
        for lin, w, b in saved:
            lin.weight.data, lin.bias.data = w, b

    return undo


def sensitivity(name: str, tensors: dict[str, torch.Tensor], model: Any, orig: Any) -> dict[str, Any]:
    """How far the logits move under mistakes a reimplementation could make (the original code,
    patched for each one), so a test's tolerance can be set far below them."""
    ids, mo = tensors[f"{name}.input_ids"], tensors[f"{name}.media_offset"]
    pv, embeds, base = tensors[f"{name}.pixel_values"], tensors[f"{name}.image_embeds"], tensors[f"{name}.logits"]
    attn = orig.hyper.HyperQwen2Attention
    rope = attn.apply_mi_rope

    def at_image_token(self: Any, key_layer: Any, media_offset_line: Any, length_each_img: int) -> Any:
        shifted = torch.cat([media_offset_line[1:], media_offset_line[-1:]])
        return rope(self, key_layer, shifted, length_each_img)

    moved: dict[str, torch.Tensor] = {}
    with patched(attn, "apply_mi_rope", lambda self, key_layer, **kw: key_layer):
        moved["visual keys without RoPE"] = last_logits(model, ids, mo, embeds)
    with patched(attn, "apply_mi_rope", at_image_token):
        moved["visual keys RoPE'd at the <|image|> position, not +1"] = last_logits(model, ids, mo, embeds)

    def all_visible(media_offset_line: Any, num_images: Any) -> torch.Tensor:
        return torch.zeros((len(media_offset_line), int(num_images)), dtype=torch.bool)

    with patched(orig.hyper, "make_t2v_mask", all_visible):
        moved["no text-to-image mask (every query sees every view)"] = last_logits(model, ids, mo, embeds)
    undo = kv_outer_permutation(model)
    try:
        moved["v_kv_proj read as (KV H D) instead of (H KV D)"] = last_logits(model, ids, mo, embeds)
    finally:
        undo()
    hyper = [m for m in model.modules() if hasattr(m, "v_kv_proj")]
    for m in hyper:
        m.gate_proj = OneMinus(m.gate_proj)
    try:
        moved["gate swapped (g on the text side, 1-g on the image side)"] = last_logits(model, ids, mo, embeds)
    finally:
        for m in hyper:
            m.gate_proj = m.gate_proj.gate
    with torch.inference_mode():
        last = model.vision2text_model(model.vision_model(pv, output_hidden_states=True).hidden_states[-1])
    moved["SigLIP hidden_states[-1] instead of [-2]"] = last_logits(model, ids, mo, last)
    moved["no image at all (image_embeds=None)"] = last_logits(model, ids, mo, None)
    assert torch.equal(last_logits(model, ids, mo, embeds), base), "the original is not deterministic"
    return {
        "case": name,
        "logits_abs_max": float(base.abs().max()),
        "max_abs_logit_change": {k: float((v - base).abs().max()) for k, v in moved.items()},
        "top1_changes": {k: bool(v.argmax() != base.argmax()) for k, v in moved.items()},
    }
