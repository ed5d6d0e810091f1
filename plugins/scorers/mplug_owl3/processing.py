"""mPLUG-Owl3 (240728)'s processor: the chat text, the cut into crops, and ``media_offset``.

What the original ``image_processing_mplugowl3.py`` / ``processing_mplugowl3.py`` do for one
image per conversation, for a batch of conversations at once (the original takes one): each
image is cut into a grid of S x S crops chosen from seven anchors by shape, then resolution,
plus a global view; its ``<|image|>`` placeholder becomes the "Cut to {rows} rows {cols}
columns with a global view" text with one ``<|image|>`` per crop. Rows are left-padded and
``media_offset`` describes a padded batch as the original model reads one (see
``modeling``). The README of ``tests/data/mplug_owl3_240728`` lists the facts, items 16-24.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

IMAGE = "<|image|>"
ANCHORS = ((2, 2), (1, 3), (1, 4), (3, 1), (4, 1), (2, 3), (3, 2))
"""(rows, cols) of the ``grid_squ_6`` anchors, in the original's order: no 1x1, so every image
is at least three crops plus the global view."""


@lru_cache(maxsize=4096)
def cut_grid(width: int, height: int, size: int) -> tuple[int, int]:
    """The (rows, cols) the original picks for a ``width`` x ``height`` image and crops of ``size``.

    Score = 100 x the IoU of each anchor box (cols·S x rows·S) with a box of the image's aspect
    ratio and the anchor's width (its height truncated to an integer, as the original writes it
    into an int64 tensor) + the IoU with the image's own box; the first maximum wins. In float32,
    as the original (torch's default dtype), so ties resolve as there.
    """
    boxes = np.array([(c * size, r * size) for r, c in ANCHORS], dtype=np.int64)
    w, h = boxes[:, 0], boxes[:, 1]
    area = w * h
    inter = np.minimum(w, width) * np.minimum(h, height)
    eps = np.float32(1e-5)
    resolution = inter.astype(np.float32) / ((area + width * height - inter).astype(np.float32) + eps)
    shape_h = (np.float32(height / width) * w.astype(np.float32)).astype(np.int64)
    inter = w * np.minimum(h, shape_h)
    shape = inter.astype(np.float32) / ((area + w * shape_h - inter).astype(np.float32) + eps)
    return ANCHORS[int(np.argmax(shape * np.float32(100) + resolution))]


def cut_text(rows: int, cols: int) -> str:
    """What a ``<|image|>`` placeholder becomes for a grid (the ``v2_global`` template)."""
    lines = "\n".join(" ".join(f"subimg({i},{j}){IMAGE}" for j in range(cols)) for i in range(rows))
    return f"Cut to {rows} rows {cols} columns with a global view\n{lines}\nglobal_view{IMAGE}"


def chat_text(turns: Sequence[dict[str, Any]], generation: bool) -> str:
    """The 240728 processor's chatml (``build_text_qwen``): an empty system turn when there is
    none; with ``generation``, the prompt ends at the open assistant turn. Content items of type
    ``image`` are the ``<|image|>`` placeholder, followed by a newline before text."""
    text = "" if turns and turns[0]["role"] == "system" else "<|im_start|>system\n<|im_end|>"
    for turn in turns:
        content = turn["content"]
        if not isinstance(content, str):
            content = "".join(IMAGE + "\n" if part["type"] == "image" else part["text"] for part in content)
        if turn["role"] == "system":
            text += f"<|im_start|>system\n{content}<|im_end|>"
        else:
            text += f"\n<|im_start|>{turn['role']}\n{content}"
            if turn["role"] != "assistant":
                text += "<|im_end|>"
            else:
                text += "<|im_end|><|endoftext|>"
    return text + ("\n<|im_start|>assistant\n" if generation else "")


def normalised(image: Any) -> np.ndarray:
    """[3, H, W] float32 in [-1, 1]: ToTensor then Normalize(0.5, 0.5), as the original."""
    u = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    return (u.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)


def crops(image: Any, size: int) -> np.ndarray:
    """[rows·cols + 1, 3, S, S]: the image resized (PIL bicubic) to its grid and cut row-major,
    then resized to S x S as the global view. ``image`` must be RGB."""
    from PIL import Image

    rows, cols = cut_grid(*image.size, size)
    big = normalised(image.resize((cols * size, rows * size), Image.Resampling.BICUBIC))
    tiles = big.reshape(3, rows, size, cols, size).transpose(1, 3, 0, 2, 4).reshape(-1, 3, size, size)
    whole = normalised(image.resize((size, size), Image.Resampling.BICUBIC))
    return np.concatenate([tiles, whole[None]])


class Owl3Processor:
    """Texts with one ``<|image|>`` and their images -> ``input_ids``, ``attention_mask``,
    ``media_offset``, ``pixel_values`` (the rows' crops, concatenated in row order)."""

    def __init__(self, tokenizer: Any, image_size: int) -> None:
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE)
        if self.image_id is None or self.image_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {IMAGE} token")

    def expand(self, text: str, image: Any) -> str:
        rows, cols = cut_grid(*image.size, self.image_size)
        return text.replace(IMAGE, cut_text(rows, cols), 1)

    def encode(self, text: str) -> list[int]:
        """Token ids as the original makes them: each ``<|image|>`` on its own, the text between
        tokenized chunk by chunk, no special tokens added."""
        chunks = re.split(re.escape(IMAGE), text)
        encoded = self.tokenizer(chunks, add_special_tokens=False)["input_ids"] if chunks else []
        ids: list[int] = []
        for i, chunk in enumerate(encoded):
            if i:
                ids.append(self.image_id)
            ids.extend(chunk)
        return ids

    def image_tokens(self, size: tuple[int, int]) -> int:
        """Tokens the placeholder's expansion adds for an image of ``size``, the placeholder
        itself included (so a prompt's length is its tokens minus one plus this)."""
        return len(self.encode(cut_text(*cut_grid(*size, self.image_size))))

    def __call__(
        self,
        text: Sequence[str],
        images: Sequence[Sequence[Any]],
        padding_side: str = "left",
        return_tensors: str = "pt",
        **_: Any,
    ) -> Any:
        """A batch in the original's layout, left-padded with the tokenizer's pad token."""
        import torch
        from transformers import BatchFeature

        if padding_side != "left":
            raise ValueError("mPLUG-Owl3 rows are left-padded (the answer is read at the last position)")
        rows = [self.encode(self.expand(t, imgs[0])) for t, imgs in zip(text, images, strict=True)]
        pixels = [crops(imgs[0], self.image_size) for imgs in images]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        offset = torch.zeros((len(rows), width, 2), dtype=torch.long)
        first = 0
        for b, row in enumerate(rows):
            start = width - len(row)
            ids[b, start:] = torch.tensor(row)
            mask[b, start:] = 1
            is_image = (ids[b, start:] == self.image_id).long()
            offset[b, :, 0] = first
            offset[b, start:, 1] = first + torch.cumsum(is_image, 0) - is_image
            offset[b, :start, 1] = first
            first += len(pixels[b])
        data = {"input_ids": ids, "attention_mask": mask, "media_offset": offset}
        data["pixel_values"] = torch.from_numpy(np.concatenate(pixels))
        return BatchFeature(data, tensor_type=None)
