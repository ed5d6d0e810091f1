"""Throughput of the LLM-IQA recipe through ``iqa_core``, against a naive baseline.

Builds randomly initialised models from their configs (SAM2.1 hiera-L from the sam2
package's own config; a Janus-Pro-7B-shaped and a Qwen2.5-VL-7B-shaped VLM, see
``benchmarks/models.py``), writes them like downloaded checkpoints and loads them through the
plugins' normal local paths. Generates textured test images at each ``--sizes`` entry and
reports, per stage, the time, the fraction of wall time the models keep the device busy
(CUDA events around their forward passes; on the CPU the time inside them) and the peak
memory (GPU memory allocated; on the CPU the process's peak resident memory):

* segmentation s/image per input size, the plugin's path and the package's stock path, at
  the paper's thresholds (few random-weight candidates pass) and permissive ones (all pass);
* scoring, per VLM (Janus through ``janus_pro``, Qwen2.5-VL through ``hf_vlm``): views/s of
  the batched last-position forward on the views of the real workload (below), prompt
  tokens per view, the LM's fraction of the FLOP floor (2 x LM params x prompt tokens / time
  per view / ``--peak-tflops``; n/a on CPU), one batch split into processor / vision tower /
  language model / padding (``benchmarks/vlm_split.py``), and a per-view
  ``generate(max_new_tokens=1)`` loop as the naive baseline;
* end to end through :class:`iqa_core.pipeline.Pipeline` (Janus) with the real workload's
  ~9 views per image (``benchmarks/regions.py``: SAM2 runs, then 7 fixed masks of mixed
  sizes are returned): with SAM2 at the paper's thresholds, with every candidate passing,
  and without SAM2; images/s, views/s, and a naive baseline (one image at a time, stock
  SAM2, one generate per view) in the same run;
* the issue's table (``ISSUE_ROWS``): each figure against its target.

    python benchmarks/throughput.py --device cuda --json bench.json          # H100/H200
    python benchmarks/throughput.py --tiny --device cpu --json tiny.json    # smoke test

Weights are random, so scores mean nothing: only shapes, token counts and time matter.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.images import write_images  # noqa: E402
from benchmarks.measure import Busy, Memory, Timer  # noqa: E402
from benchmarks.models import (  # noqa: E402
    JANUS_PRO_7B,
    QWEN25_VL_7B,
    QWEN25_VL_TINY,
    build_janus,
    build_qwen25_vl,
    language_model_params,
)
from benchmarks.regions import FixedRegions  # noqa: E402
from benchmarks.vlm_split import split_batch  # noqa: E402

SAM2_LARGE = "configs/sam2.1/sam2.1_hiera_l.yaml"
SAM2_TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"
# Table 2 with random weights: the paper's settings (thresholds) ...
PAPER_SEG: dict[str, Any] = {}
# ... and the expensive case where every candidate passes the filters
PERMISSIVE_SEG = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        w, _, h = item.strip().lower().partition("x")
        sizes.append((int(w), int(h)))
    return sizes


def label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------ stages


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


# ------------------------------------------------------------------------------ the issue's table

# (row, how to read it from the result, target, whether higher is better)
ISSUE_ROWS: list[tuple[str, str, float, bool]] = [
    ("SAM2-L, few candidates pass, s/image, {small}", "seg:paper:{small}", 0.1, False),
    ("SAM2-L, few candidates pass, s/image, {large}", "seg:paper:{large}", 0.1, False),
    ("SAM2-L, every candidate passes, s/image, {small}", "seg:permissive:{small}", 0.1, False),
    ("SAM2-L, every candidate passes, s/image, {large}", "seg:permissive:{large}", 0.1, False),
    ("Janus-Pro-7B-shaped batched forward, LM FLOP-floor fraction", "floor:janus", 0.6, True),
    ("Qwen2.5-VL-7B-shaped via hf_vlm, LM FLOP-floor fraction", "floor:qwen25_vl", 0.4, True),
    ("Qwen2.5-VL-7B-shaped via hf_vlm, speed-up over per-view generate", "speedup:qwen25_vl", 4.0, True),
    ("end to end, SAM2 (few pass) + Janus, ~9 views/image, {small}, images/s", "e2e:sam2:{small}", 6.0, True),
    ("same without SAM2, {small}, images/s (reference)", "e2e:no_sam2:{small}", 0.0, True),
    ("same, every SAM2 candidate passing, {small}, images/s", "e2e:sam2_permissive:{small}", 5.0, True),
    ("end to end at {large} / at {small} (SAM2 few pass)", "e2e_ratio:sam2", 0.8, True),
]


def issue_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row of the issue's table: the measured value and whether it meets the target
    (``met`` is None in tiny mode: tiny models on a CPU say nothing about the GPU targets)."""
    sizes = r["settings"]["sizes"]
    small, large = sizes[0], sizes[-1]
    rows = []
    for text, where, target, higher in ISSUE_ROWS:
        kind, *key = where.format(small=small, large=large).split(":")
        value: Any = None
        try:
            if kind == "seg":
                value = r["segmentation"][key[0]][key[1]]["fast_s_per_image"]
            elif kind == "floor":
                value = r["scoring"][key[0]]["lm_flop_floor_fraction"]
            elif kind == "speedup":
                value = r["scoring"][key[0]]["speedup"]
            elif kind == "e2e":
                value = r["end_to_end"][key[1]][key[0]]["images_per_s"]
            elif kind == "e2e_ratio":
                e2e = r["end_to_end"]
                value = e2e[large][key[0]]["images_per_s"] / e2e[small][key[0]]["images_per_s"]
        except KeyError:  # a stage that was not run (e.g. --no-seg-permissive)
            value = None
        met = None
        if r["mode"] == "full" and value is not None and target:
            met = value >= target if higher else value <= target
        rows.append(
            {
                "row": text.format(small=small, large=large),
                "value": value,
                "target": (">= " if higher else "<= ") + format(target, "g") if target else "",
                "met": met,
            }
        )
    return rows


# ------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace

    import torch

    t_start = time.perf_counter()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tiny = args.tiny if args.tiny is not None else device == "cpu"
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device")
    if not tiny and not cuda:
        raise SystemExit("real-size models need a GPU; use --tiny for the CPU smoke mode")
    if device == "cpu":
        torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    peak = args.peak_tflops if cuda else None
    n = args.images if args.images is not None else (2 if tiny else 16)
    if args.max_side is None:
        args.max_side = 256 if tiny else 1024
    sizes = parse_sizes(args.sizes)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="iqa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    mem = Memory(cuda)

    # ---- models, built once and loaded through the plugins' local paths
    from iqa_plugins.testing.tiny_sam2 import build_random_sam2
    from iqa_plugins.testing.tiny_vlm import JANUS_TINY

    t0 = time.perf_counter()
    dtype = "float32" if tiny else "bfloat16"
    if tiny:
        seg_files = build_random_sam2(work / "sam2", SAM2_TINY, image_size=128, name="sam2_tiny128")
        seg_arch = "sam2.1 hiera-t, image_size 128 (random)"
        vlm_dirs = {
            "janus": build_janus(work / "janus_tiny", JANUS_TINY, "cpu", dtype),
            "qwen25_vl": build_qwen25_vl(work / "qwen25_vl_tiny", QWEN25_VL_TINY, "cpu", dtype),
        }
        vlm_archs = {"janus": "janus (tiny dims, random)", "qwen25_vl": "qwen2.5-vl (tiny dims, random)"}
    else:
        seg_files = build_random_sam2(work / "sam2", SAM2_LARGE, name="sam2.1_hiera_l")
        seg_arch = "sam2.1 hiera-l (package config, random weights)"
        vlm_dirs = {
            "janus": build_janus(work / "janus_pro_7b", JANUS_PRO_7B, device, dtype),
            "qwen25_vl": build_qwen25_vl(work / "qwen25_vl_7b", QWEN25_VL_7B, device, dtype),
        }
        vlm_archs = {
            "janus": "janus-pro-7b dims (random weights, bf16)",
            "qwen25_vl": "qwen2.5-vl-7b dims (random weights, bf16)",
        }
    build_s = time.perf_counter() - t0

    seg_params: dict[str, Any] = {**seg_files, "max_side": args.max_side}
    batch = args.batch_size or (8 if tiny else 32)
    plugin_of = {"janus": "janus_pro", "qwen25_vl": "hf_vlm"}
    recipe = {
        "segmenter": {"name": "sam2", "params": {**seg_params, "device": device}},
        "regions": {
            "min_area": 0.01,
            "complement": True,
            "views": ["bbox", "whole"],
            "min_view_side": 32,
            "prescale": args.prescale,
        },
        "standard": {"name": "word", "params": {"levels": 7}},
        "scorers": [
            {
                "name": plugin_of[name],
                "label": name,
                "params": {"model": str(path), "device": device, "batch_size": batch},
            }
            for name, path in vlm_dirs.items()
        ],
        "decode": "argmax",
        "aggregate": {"name": "mix_grained", "params": {"lam": 1.0, "local": "area"}},
        "ensemble": {"name": "ensemble"},
        "runtime": {"store": str(work / "store.sqlite"), "chunk_images": args.chunk_images, "workers": args.workers},
    }
    images = write_images(work / "images", sizes, n + 1, seed=args.seed)
    stage_images = {s: p[1:] for s, p in images.items()}
    warmup = [p[0] for p in images.values()]

    from iqa_core.recipe import resolve
    from iqa_plugins.segmenters.sam2 import SAM2Segmenter

    resolved = resolve(recipe)
    scorers = {name: (scorer, standard) for name, scorer, standard in resolved.scorers}

    result: dict[str, Any] = {
        "mode": "tiny" if tiny else "full",
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "transformers": _version("transformers"),
            "torch_threads": torch.get_num_threads(),
        },
        "models": {"segmenter": {"arch": seg_arch, "max_side": args.max_side}, "vlms": {}},
        "settings": {
            "images_per_size": n,
            "sizes": [label(s) for s in sizes],
            "batch_size": batch,
            "chunk_images": args.chunk_images,
            "workers": args.workers,
            "regions": "sam2 runs, then 7 fixed masks (benchmarks/regions.py)",
            "prescale": args.prescale,
        },
        "memory": mem.kind,
        "peak_tflops": peak,
        "build_s": build_s,
    }

    # ---- segmentation stage
    result["segmentation"] = time_segmentation(seg_params, stage_images, device, cuda, mem, args.seg_permissive)

    # ---- scoring stage, per VLM (the real workload's views of the first size)
    views = realistic_views(stage_images[sizes[0]], resolved.recipe.regions)
    result["scoring"] = {}
    for name, (scorer, standard) in scorers.items():
        t0 = time.perf_counter()
        scorer.load(standard)
        load_s = time.perf_counter() - t0
        result["models"]["vlms"][name] = {
            "arch": vlm_archs[name],
            "plugin": plugin_of[name],
            "params": sum(p.numel() for p in scorer.model.parameters()),
            "lm_params": language_model_params(scorer.model),
            "dtype": str(next(scorer.model.parameters()).dtype),
            "load_s": load_s,
        }
        naive = args.naive_views or (4 if tiny else 32)
        result["scoring"][name] = time_scoring(scorer, standard, views, cuda, mem, peak, naive)
        scorer.model = scorer.processor = None  # free it before the next model
        if cuda:
            torch.cuda.empty_cache()

    # ---- end to end with ~9 views/image (Janus), product vs naive
    janus = [entry for entry in resolved.scorers if entry[0] == "janus"]
    one = replace(resolved, scorers=janus)
    sam2 = SAM2Segmenter({**seg_params, "device": device})
    variants = {"sam2": FixedRegions(sam2, args.max_side), "no_sam2": FixedRegions(None, args.max_side)}
    if args.seg_permissive:
        permissive = SAM2Segmenter({**seg_params, **PERMISSIVE_SEG, "device": device})
        variants["sam2_permissive"] = FixedRegions(permissive, args.max_side)
    e2e: dict[str, Any] = {label(size): {} for size in sizes}
    for name, segmenter in variants.items():
        rows = pipeline_end_to_end(one, segmenter, work / f"store-{name}.sqlite", stage_images, warmup, cuda, mem)
        for size, row in rows.items():
            e2e[size][name] = row
    stock = FixedRegions(SAM2Segmenter({**seg_params, "device": device, "fast_postprocess": False}), args.max_side)
    stock.load()
    scorer, standard = janus[0][1], janus[0][2]
    for size in sizes:
        naive_paths = stage_images[size][: args.naive_images or n]
        row = naive_end_to_end(stock, scorer, standard, resolved.recipe.regions, naive_paths, cuda, mem)
        e2e[label(size)]["naive"] = row
        e2e[label(size)]["speedup"] = e2e[label(size)]["sam2"]["images_per_s"] / row["images_per_s"]
    result["end_to_end"] = e2e
    result["peak_memory_gib"] = mem.peaks
    result["issue_rows"] = issue_rows(result)
    result["total_s"] = time.perf_counter() - t_start
    return result


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def table(r: dict[str, Any]) -> str:
    gib = "GPU GiB" if r["memory"] == "gpu_allocated" else "RSS GiB"
    lines = [
        f"iqa throughput — {r['mode']} mode on {r['device']} (torch {r['machine']['torch']}, "
        f"transformers {r['machine']['transformers']})",
        f"  segmenter: {r['models']['segmenter']['arch']}",
    ]
    for name, vlm in r["models"]["vlms"].items():
        lines.append(
            f"  {name} ({vlm['plugin']}): {vlm['arch']}, {vlm['params'] / 1e9:.3g} B params "
            f"(LM {vlm['lm_params'] / 1e9:.3g} B)"
        )
    lines += [
        "",
        f"{'segmentation':<24}{'size':>11}{'plugin s/img':>14}{'stock s/img':>13}{'masks':>7}"
        f"{'speed-up':>10}{'busy':>6}{gib:>9}",
    ]
    for setting, rows in r["segmentation"].items():
        for size, row in rows.items():
            lines.append(
                f"  {setting:<22}{size:>11}{fmt(row['fast_s_per_image']):>14}"
                f"{fmt(row['stock_s_per_image']):>13}{fmt(row['fast_masks_per_image']):>7}"
                f"{fmt(row['speedup']):>9}x{pct(row['fast_busy_fraction']):>6}{fmt(row['fast_peak_memory_gib']):>9}"
            )
    for name, s in r["scoring"].items():
        sp = s["split"]
        lo, hi = s["prompt_tokens_range"]
        lines += [
            "",
            f"scoring {name} (batch {s['batch_size']}, {s['views']} views, {fmt(s['prompt_tokens_per_view'])} "
            f"prompt tokens/view, {lo}-{hi})",
            f"  batched: {fmt(s['views_per_s'])} views/s ({fmt(s['s_per_view'] * 1e3)} ms/view), busy "
            f"{pct(s['busy_fraction'])}, peak {fmt(s['peak_memory_gib'])} {gib}",
            f"  naive generate(max_new_tokens=1) per view: {fmt(s['naive_views_per_s'])} views/s "
            f"({fmt(s['naive_s_per_view'] * 1e3)} ms/view); speed-up {fmt(s['speedup'])}x",
            f"  FLOPs/view {fmt(s['flops_per_view'])}; LM fraction of the FLOP floor "
            f"{fmt(s['lm_flop_floor_fraction'])} (peak {fmt(r['peak_tflops'])} TFLOP/s)",
            f"  one batch, ms/view: processor {fmt(sp['processor_s_per_view'] * 1e3)}, vision "
            f"{fmt(sp['vision_s_per_view'] * 1e3)}, LM {fmt(sp['language_model_s_per_view'] * 1e3)} "
            f"(padding {pct(sp['padding'])} of positions, ~{fmt(sp['padding_s_per_view'] * 1e3)}), "
            f"other {fmt(sp['other_s_per_view'] * 1e3)}",
        ]
    lines += [
        "",
        f"{'end to end (Janus)':<20}{'size':>11}{'images/s':>10}{'views/s':>10}{'views/img':>11}{'busy':>6}{gib:>9}",
    ]
    for size, row in r["end_to_end"].items():
        for name in ("sam2", "sam2_permissive", "no_sam2", "naive"):
            if name not in row:
                continue
            p = row[name]
            views_s = p.get("views_per_s", p["views_per_image"] * p["images_per_s"])
            lines.append(
                f"  {name:<18}{size:>11}{fmt(p['images_per_s']):>10}{fmt(views_s):>10}"
                f"{fmt(p['views_per_image']):>11}{pct(p.get('busy_fraction')):>6}{fmt(p['peak_memory_gib']):>9}"
            )
        lines.append(f"  {'speed-up sam2 / naive':<29}{fmt(row['speedup']):>9}x")
    lines += ["", "issue table"]
    for row in r["issue_rows"]:
        if r["mode"] != "full":
            status = "needs --device cuda (tiny CPU proxy: " + fmt(row["value"]) + ")"
        else:
            status = f"{fmt(row['value'])}  target {row['target'] or '-'}  " + (
                "met" if row["met"] else "NOT met" if row["met"] is False else ""
            )
        lines.append(f"  {row['row']:<72}{status}")
    lines += ["", f"build {r['build_s']:.1f} s, total {r['total_s']:.1f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--tiny",
        dest="tiny",
        action="store_true",
        default=None,
        help="tiny random models: the CPU smoke mode (default on CPU)",
    )
    mode.add_argument(
        "--full",
        dest="tiny",
        action="store_false",
        help="real-size models: SAM2.1 hiera-L, Janus-Pro-7B and Qwen2.5-VL-7B dims (default on GPU)",
    )
    ap.add_argument("--images", type=int, default=None, help="timed images per size (default 16 full, 2 tiny)")
    ap.add_argument("--sizes", default="1024x768,4000x3000", help="WxH,WxH,...")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=790.0,
        help="the GPU's bf16 peak in TFLOP/s (default 790, the H100 figure of DESIGN.md §5)",
    )
    ap.add_argument("--batch-size", type=int, default=None, help="scorer batch (default 32 full, 8 tiny)")
    ap.add_argument("--chunk-images", type=int, default=32)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--max-side", type=int, default=None, help="SAM2 working resolution (default 1024 full, 256 tiny)")
    ap.add_argument(
        "--naive-views",
        type=int,
        default=None,
        help="views in the per-view generate baseline (default 32 full, 4 tiny)",
    )
    ap.add_argument(
        "--naive-images", type=int, default=None, help="images per size in the naive end-to-end baseline (default all)"
    )
    ap.add_argument(
        "--seg-permissive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time SAM2 with every candidate passing the filters, alone and end to end (default on)",
    )
    ap.add_argument(
        "--prescale",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="regions.prescale in the recipe: JPEGs decoded reduced, views shrunk to each scorer's input size "
        "(other pixels than full-resolution cuts; default off)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    ap.add_argument("--workdir", default=None, help="models, images, store (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    result = run(args)
    print(table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
