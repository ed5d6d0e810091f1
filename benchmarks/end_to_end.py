"""The throughput benchmark's end-to-end timings: the pipeline, and a naive one-image-at-a-time
baseline (see ``benchmarks/throughput.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import Busy, Memory, Timer
from benchmarks.stage_timing import encode, label, sam2_modules


def naive_end_to_end(
    stock_seg: Any, scorer: Any, standard: Any, regions_spec: Any, paths: list[Path], cuda: bool, mem: Memory
) -> dict[str, Any]:
    """One image at a time: decode, stock SAM2 (+ the fixed masks), Algorithm 1, one generate
    per view."""
    import torch
    from PIL import Image

    from iqa_core.api import View
    from iqa_core.regions import build_regions, crop_view

    model, pad = scorer.model, scorer.tokenizer.pad_token_id
    views_done = failed = 0
    mem.start()
    with Timer(cuda) as t, torch.inference_mode():
        for path in paths:
            with Image.open(path) as im:
                image = im.convert("RGB")
            masks = stock_seg.segment(np.asarray(image))
            regions = build_regions(masks, image.size, regions_spec.min_area, regions_spec.complement)
            for region in regions:
                mode = "whole" if region.kind == "global" else "bbox"
                view = View(crop_view(image, region, mode, regions_spec.min_view_side), key="")
                try:  # a view the processor rejects fails in the product too
                    model.generate(
                        **encode(scorer, view, standard), max_new_tokens=1, do_sample=False, pad_token_id=pad
                    )
                except Exception:
                    failed += 1
                    continue
                views_done += 1
    return {
        "images": len(paths),
        "images_per_s": len(paths) / t.s,
        "views_per_image": views_done / len(paths),
        "failed_views": failed,
        "s": t.s,
        "peak_memory_gib": mem.stop("naive"),
    }


def pipeline_end_to_end(
    resolved: Any,
    segmenter: Any,
    store_path: Path,
    images: dict[tuple[int, int], list[Path]],
    warmup: list[Path],
    cuda: bool,
    mem: Memory,
) -> dict[str, dict[str, Any]]:
    """Per input size, ``Pipeline.score_many`` with ``segmenter`` from a fresh store (nothing
    cached), after warm-up images; busy = the scorers' and SAM2's forward passes."""
    from dataclasses import replace

    from iqa_core.pipeline import Pipeline
    from iqa_core.store import Store

    for suffix in ("", "-wal", "-shm"):
        Path(f"{store_path}{suffix}").unlink(missing_ok=True)
    pipe = Pipeline(replace(resolved, segmenter=segmenter), Store(store_path))
    pipe.load()
    pipe.score_many([str(p) for p in warmup])
    inner = getattr(segmenter, "inner", None)
    modules = [scorer.model for _, scorer, _ in pipe.scorers] + (sam2_modules(inner) if inner is not None else [])
    out = {}
    for size, paths in images.items():
        busy = Busy(modules, cuda)
        before = dict(pipe.stats)
        mem.start()
        with Timer(cuda) as t:
            results = pipe.score_many([str(p) for p in paths])
        peak = mem.stop("end_to_end")
        busy_s = busy.seconds()
        busy.close()
        errors = [r.error for r in results if r.error]
        views = pipe.stats["views_scored"] - before.get("views_scored", 0)
        out[label(size)] = {
            "images": len(paths),
            "images_per_s": len(paths) / t.s,
            "views_per_image": views / len(paths),
            "views_per_s": views / t.s,
            "s": t.s,
            "busy_fraction": busy_s / t.s,
            "peak_memory_gib": peak,
            "failed_images": len(errors),
            "errors": sorted(set(errors))[:3],
        }
    return out
