"""Views as model inputs: fitted images, length buckets and token counts.

Views are batched by prompt length (:func:`length_buckets`): each bucket is one forward pass
without padding that keeps only the last position's logits (``logits_to_keep=1``), so a view's
scores do not depend on which other views share its batch, and the (N, L, V) logits of a 7B
model are never materialised. When the processor can say how many image tokens a view of a
given size becomes (:meth:`ViewInputs.image_tokens`, from its own resize rule, as vLLM asks it),
views are bucketed before the processor runs, so each view is processed once; the same count
gives the engine :meth:`ViewInputs.view_tokens` for batches by token budget. ``pad_slack``
trades exactness for fewer forward passes: prompts that differ by at most that many tokens
share one left-padded pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from iqa_core.api import Standard, View
from iqa_plugins.scorers.mllm.chat import ChatPrompts

if TYPE_CHECKING:
    import torch

MAX_ASPECT = 100.0
MIN_SIDE = 4
"""Views thinner than 1:MAX_ASPECT or MIN_SIDE pixels are padded: image processors reject
(Qwen2-VL: over 1:200) or misread extreme slivers (a 384x3 array looks channels-first, a
1-pixel one too, and transformers' processors guess the channel axis from the shape)."""


def sliver_padded_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of a view after padding to at least MIN_SIDE and at most 1:MAX_ASPECT."""
    w, h = size
    return max(w, MIN_SIDE, int(np.ceil(h / MAX_ASPECT))), max(h, MIN_SIDE, int(np.ceil(w / MAX_ASPECT)))


def fitted_size(size: tuple[int, int], max_pixels: int | None) -> tuple[int, int]:
    """(width, height) :func:`fit_view` gives a view of ``size``, without the pixels."""
    w, h = sliver_padded_size(size)
    if max_pixels is not None and w * h > max_pixels:
        scale = (max_pixels / (w * h)) ** 0.5
        return max(1, int(w * scale)), max(1, int(h * scale))
    return w, h


def fit_view(image: Any, max_pixels: int | None) -> Any:
    """``image`` padded (black, centred) to at least MIN_SIDE pixels and at most 1:MAX_ASPECT,
    and scaled down to at most ``max_pixels`` pixels, so a 12-megapixel whole view does not
    become thousands of tokens."""
    from PIL import Image, ImageOps

    padded = sliver_padded_size(image.size)
    if padded != image.size:
        image = ImageOps.pad(image, padded, color=0)  # scales a view smaller than MIN_SIDE up, pads the rest
    size = fitted_size(image.size, max_pixels)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def group_lengths(lengths: Sequence[int], slack: int = 0) -> list[list[int]]:
    """Row indices grouped so that lengths within a group differ by at most ``slack``.

    0: equal lengths, groups in first-seen order. Otherwise rows are sorted by length and a
    group closes when the next row is more than ``slack`` longer than the group's shortest.
    """
    if slack == 0:
        groups: dict[int, list[int]] = {}
        for row, length in enumerate(lengths):
            groups.setdefault(int(length), []).append(row)
        return list(groups.values())
    out: list[list[int]] = []
    shortest = 0
    for row in sorted(range(len(lengths)), key=lambda r: lengths[r]):
        if not out or lengths[row] - shortest > slack:
            out.append([])
            shortest = lengths[row]
        out[-1].append(row)
    return out


def length_buckets(attention_mask: torch.Tensor, slack: int = 0) -> list[list[int]]:
    """Row indices grouped by prompt length (unpadded token count), see :func:`group_lengths`."""
    return group_lengths([int(n) for n in attention_mask.sum(dim=1).tolist()], slack)


def spread(attention_mask: torch.Tensor) -> int:
    """Longest minus shortest prompt in a left-padded batch."""
    lengths = attention_mask.sum(dim=1)
    return int(lengths.max() - lengths.min())


class Prepared(NamedTuple):
    """Model inputs for ``n`` views as equal-length buckets: (the views' rows, their inputs)."""

    n: int
    buckets: list[tuple[list[int], Any]]


class ViewInputs(ChatPrompts):
    """How a batch of views becomes the processor's inputs, bucketed by prompt length.

    ``device`` and ``_text_tokens`` are set by the loading subclass.
    """

    device: torch.device
    _text_tokens: int | None

    def fit(self, image: Any) -> Any:
        """A view's image as the processor gets it (slivers padded, see :func:`fit_view`)."""
        return fit_view(image, None)

    def fit_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) :meth:`fit` gives a view of ``size``, without the pixels."""
        return fitted_size(size, None)

    def image_tokens(self, size: tuple[int, int]) -> int | None:
        """How many tokens the processor makes of a fitted image of ``size`` (width, height),
        from its resize rule without running it: transformers' processors answer this for vLLM
        (``_get_num_multimodal_tokens``). None when the processor cannot say."""
        count = getattr(self.processor, "_get_num_multimodal_tokens", None)
        if count is None:
            return None
        w, h = size
        try:
            return int(count(image_sizes=[(h, w)])["num_image_tokens"][0])
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, NotImplementedError):
            return None

    def text_tokens(self, standard: Standard) -> int | None:
        """Prompt tokens besides the image's for ``standard``, or None when :meth:`image_tokens`
        cannot say or disagrees with the processor on two probe images (then views are
        bucketed by what the processor produces, as before)."""
        from PIL import Image

        text, counts = self.prompt(standard), set()
        for size in ((64, 48), (40, 160)):  # landscape and portrait: variable-size processors differ
            image = self.fit(Image.new("RGB", size))
            n = self.image_tokens(image.size)
            if n is None:
                return None
            counts.add(int(self.process(text, [image])["input_ids"].shape[1]) - n)
        return counts.pop() if len(counts) == 1 else None

    def view_tokens(self, size: tuple[int, int]) -> int | None:
        """Prompt tokens of a view of ``size`` with the standard the scorer was loaded with."""
        text = getattr(self, "_text_tokens", None)
        n = None if text is None else self.image_tokens(self.fit_size(size))
        return None if n is None else text + n

    def processor_kwargs(self) -> dict[str, Any]:
        """Extra arguments for the processor call (e.g. Janus' generation mode)."""
        return {}

    def preprocess_device(self) -> torch.device | None:
        """Where the image processor resizes and normalises: the model's CUDA device when the
        processor is torchvision-backed (transformers 5's default image processors are), so
        the CPU only decodes; None (the CPU) otherwise."""
        if self.device.type != "cuda":
            return None
        from transformers.image_processing_backends import TorchvisionBackend

        return self.device if isinstance(getattr(self.processor, "image_processor", None), TorchvisionBackend) else None

    def process(self, text: str, images: list[Any]) -> Any:
        """One processor call: the prompt once per image, left-padded (images on
        :meth:`preprocess_device` when there is one)."""
        bos = self.tokenizer.bos_token
        device = self.preprocess_device()
        return self.processor(
            text=[text] * len(images),
            images=[[image] for image in images],
            padding=True,
            padding_side="left",
            # a template that writes BOS itself must not get a second one
            add_special_tokens=not (bos and text.startswith(bos)),
            return_tensors="pt",
            **({} if device is None else {"device": device}),
            **self.processor_kwargs(),
        )

    def prepare(self, views: Sequence[View], standard: Standard) -> Prepared:
        """Model inputs for the views, bucketed by prompt length so no row is padded (with
        ``pad_slack`` 0): a view's scores then do not depend on its batch. The engine overlaps
        this with the previous batch's forward pass.

        When :meth:`image_tokens` knows each view's count, the buckets are formed first and
        each view is processed once; otherwise all views are processed together and, if their
        lengths differ, once more per bucket.
        """
        text, slack = self.prompt(standard), self.params.pad_slack
        images = [self.fit(view.image) for view in views]
        counts = [self.image_tokens(image.size) for image in images] if self._text_tokens is not None else [None]
        if None not in counts:
            buckets = [(rows, self.process(text, [images[i] for i in rows])) for rows in group_lengths(counts, slack)]
            if all(spread(inputs["attention_mask"]) <= slack for _, inputs in buckets):
                return Prepared(len(views), buckets)
        inputs = self.process(text, images)
        rows = length_buckets(inputs["attention_mask"], slack)
        if len(rows) == 1:
            return Prepared(len(views), [(rows[0], inputs)])
        return Prepared(len(views), [(group, self.process(text, [images[i] for i in group])) for group in rows])
