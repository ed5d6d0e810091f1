"""The throughput benchmark's stage timings: SAM2 segmentation, and batched scoring against
a per-view ``generate`` loop (see ``benchmarks/throughput.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import Busy, Memory, Timer
from benchmarks.models import language_model_params
from benchmarks.regions import FixedRegions
from benchmarks.vlm_split import split_batch

# Table 2 with random weights: the paper's settings (thresholds) ...
PAPER_SEG: dict[str, Any] = {}
# ... and the expensive case where every candidate passes the filters
PERMISSIVE_SEG = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def sam2_modules(seg: Any) -> list[Any]:
    """The sam2 plugin's model parts that run on the device (image encoder, mask decoder)."""
    model = seg._generator.predictor.model
    return [model.image_encoder, model.sam_mask_decoder]


def time_segmentation(
    seg_params: dict[str, Any],
    images: dict[tuple[int, int], list[Path]],
    device: str,
    cuda: bool,
    mem: Memory,
    permissive: bool,
) -> dict[str, Any]:
    """s/image of the plugin's path and of the package's stock path, per input size; the
    plugin's busy fraction (SAM2's encoder + decoder) and peak memory."""
    from iqa_plugins.segmenters.sam2 import SAM2Segmenter

    settings = {"paper": PAPER_SEG}
    if permissive:
        settings["permissive"] = PERMISSIVE_SEG
    out: dict[str, Any] = {}
    for name, extra in settings.items():
        fast = SAM2Segmenter({**seg_params, **extra, "device": device})
        stock = SAM2Segmenter({**seg_params, **extra, "device": device, "fast_postprocess": False})
        fast.load()
        stock.load()
        warm = load_rgb(next(iter(images.values()))[0])
        fast.segment(warm)
        stock.segment(warm)
        for size, paths in images.items():
            row: dict[str, Any] = {}
            for tag, seg in (("fast", fast), ("stock", stock)):
                busy = Busy(sam2_modules(seg), cuda)
                times, counts = [], []
                mem.start()
                for path in paths:
                    rgb = load_rgb(path)
                    with Timer(cuda) as t:
                        masks = seg.segment(rgb)
                    times.append(t.s)
                    counts.append(len(masks))
                row[f"{tag}_peak_memory_gib"] = mem.stop("segmentation")
                row[f"{tag}_s_per_image"] = float(np.mean(times))
                row[f"{tag}_masks_per_image"] = float(np.mean(counts))
                row[f"{tag}_model_s_per_image"] = busy.seconds() / len(paths)
                row[f"{tag}_busy_fraction"] = busy.seconds() / sum(times)
                busy.close()
            row["speedup"] = row["stock_s_per_image"] / max(row["fast_s_per_image"], 1e-12)
            out.setdefault(name, {})[label(size)] = row
        del fast, stock
    return out


def realistic_views(paths: list[Path], regions_spec: Any) -> list[Any]:
    """The views the pipeline cuts with :class:`FixedRegions`: the whole image, 7 object boxes
    of mixed sizes and the complement's box, per image (the real workload's size mix)."""
    from PIL import Image

    from iqa_core.api import View
    from iqa_core.regions import build_regions, crop_view

    views = []
    for path in paths:
        with Image.open(path) as im:
            image = im.convert("RGB")
        masks = FixedRegions(None).segment(np.asarray(image))
        for k, region in enumerate(build_regions(masks, image.size, regions_spec.min_area, regions_spec.complement)):
            mode = "whole" if region.kind == "global" else "bbox"
            views.append(View(crop_view(image, region, mode, regions_spec.min_view_side), key=f"{path.name}:{k}"))
    return views


def encode(scorer: Any, view: Any, standard: Any) -> Any:
    """The scorer's model inputs for one view on its device (its own processor call)."""
    ((_, inputs),) = scorer.prepare([view], standard).buckets
    return inputs.to(scorer.device, dtype=scorer.dtype)


def time_scoring(
    scorer: Any, standard: Any, views: list[Any], cuda: bool, mem: Memory, peak_tflops: float | None, naive_views: int
) -> dict[str, Any]:
    """Batched scorer (processor + forward) vs a per-view generate(max_new_tokens=1) loop, the
    split of one batch, and the fraction of the batched time the model keeps the device busy."""
    import torch

    batch = scorer.batch_size
    split = split_batch(scorer, views[:batch], standard, cuda)  # also the warm-up
    busy = Busy([scorer.model], cuda)
    mem.start()
    with Timer(cuda) as t:
        for start in range(0, len(views), batch):
            scorer.score(views[start : start + batch], standard)
    peak = mem.stop("scoring")
    busy_s = busy.seconds()
    busy.close()
    per_view = t.s / len(views)

    tokens = []
    for view in views[: min(len(views), 18)]:
        enc = encode(scorer, view, standard)
        tokens.append(int(enc["attention_mask"].sum()))
    prompt_tokens = float(np.mean(tokens))
    lm_params = language_model_params(scorer.model)
    flops = 2.0 * lm_params * prompt_tokens

    # naive: one view at a time, generate one token (the paper's greedy answer)
    model = scorer.model
    pad = scorer.tokenizer.pad_token_id
    subset = views[: max(1, naive_views)]
    with torch.inference_mode():
        model.generate(**encode(scorer, subset[0], standard), max_new_tokens=1, do_sample=False, pad_token_id=pad)
        mem.start()
        with Timer(cuda) as tn:
            for view in subset:
                model.generate(**encode(scorer, view, standard), max_new_tokens=1, do_sample=False, pad_token_id=pad)
        mem.stop("naive")
    naive_per_view = tn.s / len(subset)
    fraction = None
    if peak_tflops:
        fraction = flops / per_view / (peak_tflops * 1e12)
    return {
        "batch_size": batch,
        "views": len(views),
        "views_per_s": 1.0 / per_view,
        "s_per_view": per_view,
        "busy_fraction": busy_s / t.s,
        "peak_memory_gib": peak,
        "prompt_tokens_per_view": prompt_tokens,
        "prompt_tokens_range": [min(tokens), max(tokens)],
        "lm_params": lm_params,
        "flops_per_view": flops,
        "flop_floor_s_per_view": flops / (peak_tflops * 1e12) if peak_tflops else None,
        "lm_flop_floor_fraction": fraction,
        "split": split,
        "naive_views": len(subset),
        "naive_s_per_view": naive_per_view,
        "naive_views_per_s": 1.0 / naive_per_view,
        "speedup": naive_per_view / per_view,
    }
