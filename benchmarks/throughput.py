"""Throughput of the LLM-IQA recipe through ``iqa_core``, against a naive baseline.

Builds randomly initialised models from their configs (SAM2.1 hiera-L from the sam2
package's own config; a Janus-Pro-7B-shaped VLM, see ``benchmarks/models.py``), writes
them like downloaded checkpoints and loads them through the plugins' normal local paths.
Generates textured test images at each ``--sizes`` entry and reports, per stage:

* segmentation s/image per input size (the plugin's path and the package's stock path);
* scoring: views/s in the scorer's batched last-position forward, prompt tokens per view
  (counted from the processor's output), the language model's fraction of the FLOP floor
  (2 x LM params x prompt tokens / time per view / ``--peak-tflops``; n/a on CPU);
* end to end through :class:`iqa_core.engine.Pipeline`: images/s and views/s;
* peak GPU memory per stage (``torch.cuda.max_memory_allocated``; n/a on CPU);
* a naive baseline written here, not in the product: one image at a time, stock SAM2,
  then one ``model.generate(max_new_tokens=1)`` per view; and the speed-up ratios.

    python benchmarks/throughput.py --device cuda --json bench.json          # H100
    python benchmarks/throughput.py --tiny --device cpu --json tiny.json    # smoke test

Weights are random, so scores mean nothing: only shapes, token counts and time matter.
Random SAM2 weights predict low IoUs, so at the paper's thresholds few candidates survive
(SAM2's cheap case); ``--seg-permissive`` also times the expensive case (every candidate
passes the IoU/stability filters) for the segmentation stage.
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
from benchmarks.models import JANUS_PRO_7B, build_janus, language_model_params  # noqa: E402

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


class Timer:
    """Wall time of a block, synchronising CUDA so GPU work is counted."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.s = 0.0

    def __enter__(self) -> Timer:
        self._sync()
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.s = time.perf_counter() - self._t

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()


class Memory:
    """Peak GPU memory of a stage, in GiB (None on CPU)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.peaks: dict[str, float | None] = {}

    def start(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def stop(self, stage: str) -> None:
        value = None
        if self.cuda:
            import torch

            value = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        old = self.peaks.get(stage)
        self.peaks[stage] = value if old is None or value is None else max(old, value)


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------ stages


def time_segmentation(
    seg_params: dict[str, Any],
    images: dict[tuple[int, int], list[Path]],
    device: str,
    cuda: bool,
    mem: Memory,
    permissive: bool,
) -> dict[str, Any]:
    """s/image of the plugin's path and of the package's stock path, per input size."""
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
                times, counts = [], []
                mem.start()
                for path in paths:
                    rgb = load_rgb(path)
                    with Timer(cuda) as t:
                        masks = seg.segment(rgb)
                    times.append(t.s)
                    counts.append(len(masks))
                mem.stop("segmentation")
                row[f"{tag}_s_per_image"] = float(np.mean(times))
                row[f"{tag}_masks_per_image"] = float(np.mean(counts))
            row["speedup"] = row["stock_s_per_image"] / max(row["fast_s_per_image"], 1e-12)
            out.setdefault(name, {})[label(size)] = row
        del fast, stock
    return out


def sample_views(paths: list[Path], per_image: int, seed: int = 0) -> list[Any]:
    """Whole images and random box crops (the size mix of bbox + whole views)."""
    from PIL import Image

    from iqa_core.api import View

    rng = np.random.default_rng(seed)
    views = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
        views.append(View(im, key=f"{path.name}:whole"))
        w, h = im.size
        for k in range(per_image - 1):
            cw, ch = int(rng.integers(w // 6, w // 2)), int(rng.integers(h // 6, h // 2))
            x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
            views.append(View(im.crop((x, y, x + cw, y + ch)), key=f"{path.name}:{k}"))
    return views


def encode(scorer: Any, view: Any, standard: Any) -> Any:
    """The scorer's model inputs for one view on its device (its own processor call)."""
    ((_, inputs),) = scorer.prepare([view], standard).buckets
    return inputs.to(scorer.device, dtype=scorer.dtype)


def time_scoring(
    scorer: Any, standard: Any, views: list[Any], cuda: bool, mem: Memory, peak_tflops: float | None, naive_views: int
) -> dict[str, Any]:
    """Batched scorer forward vs a per-view generate(max_new_tokens=1) loop."""
    import torch

    batch = scorer.batch_size
    scorer.score(views[:batch], standard)  # warm-up
    mem.start()
    with Timer(cuda) as t:
        for start in range(0, len(views), batch):
            scorer.score(views[start : start + batch], standard)
    mem.stop("scoring")
    per_view = t.s / len(views)

    tokens = []
    for view in views[: min(len(views), 16)]:
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
        "prompt_tokens_per_view": prompt_tokens,
        "lm_params": lm_params,
        "flops_per_view": flops,
        "flop_floor_s_per_view": flops / (peak_tflops * 1e12) if peak_tflops else None,
        "lm_flop_floor_fraction": fraction,
        "naive_views": len(subset),
        "naive_s_per_view": naive_per_view,
        "naive_views_per_s": 1.0 / naive_per_view,
        "speedup": naive_per_view / per_view,
    }


def naive_end_to_end(
    stock_seg: Any, scorer: Any, standard: Any, regions_spec: Any, paths: list[Path], cuda: bool, mem: Memory
) -> dict[str, Any]:
    """One image at a time: decode, stock SAM2, Algorithm 1, one generate per view."""
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
                try:  # the processor bug above: the product fails such a view too
                    model.generate(
                        **encode(scorer, view, standard), max_new_tokens=1, do_sample=False, pad_token_id=pad
                    )
                except Exception:
                    failed += 1
                    continue
                views_done += 1
    mem.stop("naive")
    return {
        "images": len(paths),
        "images_per_s": len(paths) / t.s,
        "views_per_image": views_done / len(paths),
        "failed_views": failed,
        "s": t.s,
    }


def pipeline_end_to_end(pipe: Any, paths: list[Path], cuda: bool, mem: Memory) -> dict[str, Any]:
    before = dict(pipe.stats)
    mem.start()
    with Timer(cuda) as t:
        results = pipe.score_many([str(p) for p in paths])
    mem.stop("end_to_end")
    errors = [r.error for r in results if r.error]
    views = pipe.stats["views_scored"] - before.get("views_scored", 0)
    return {
        "images": len(paths),
        "images_per_s": len(paths) / t.s,
        "views_per_image": views / len(paths),
        "views_per_s": views / t.s,
        "s": t.s,
        "failed_images": len(errors),
        "errors": sorted(set(errors))[:3],
    }


# ------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
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
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    peak = args.peak_tflops if cuda else None
    n = args.images if args.images is not None else (2 if tiny else 16)
    if args.max_side is None:
        args.max_side = 256 if tiny else 1024
    if args.seg_permissive is None:
        args.seg_permissive = not tiny
    sizes = parse_sizes(args.sizes)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="iqa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    mem = Memory(cuda)

    # ---- models, built once and loaded through the plugins' local paths
    from iqa_plugins.testing.tiny_sam2 import build_random_sam2
    from iqa_plugins.testing.tiny_vlm import JANUS_TINY

    t0 = time.perf_counter()
    if tiny:
        seg_files = build_random_sam2(work / "sam2", SAM2_TINY, image_size=128, name="sam2_tiny128")
        seg_arch = "sam2.1 hiera-t, image_size 128 (random)"
        vlm_dir = build_janus(work / "janus_tiny", JANUS_TINY, "cpu", "float32")  # test dims
        vlm_arch = "janus (tiny dims, random)"
    else:
        seg_files = build_random_sam2(work / "sam2", SAM2_LARGE, name="sam2.1_hiera_l")
        seg_arch = "sam2.1 hiera-l (package config, random weights)"
        vlm_dir = build_janus(work / "janus_pro_7b", JANUS_PRO_7B, device, "bfloat16")
        vlm_arch = "janus-pro-7b dims (random weights, bf16)"
    build_s = time.perf_counter() - t0

    seg_params: dict[str, Any] = {**seg_files, "max_side": args.max_side}
    batch = args.batch_size or (8 if tiny else 32)
    recipe = {
        "segmenter": {"name": "sam2", "params": {**seg_params, "device": device}},
        "regions": {"min_area": 0.01, "complement": True, "views": ["bbox", "whole"], "min_view_side": 32},
        "standard": {"name": "word", "params": {"levels": 7}},
        "scorers": [{"name": "janus_pro", "params": {"model": str(vlm_dir), "device": device, "batch_size": batch}}],
        "decode": "argmax",
        "aggregate": {"name": "mix_grained", "params": {"lam": 1.0, "local": "area"}},
        "ensemble": {"name": "ensemble"},
        "runtime": {"store": str(work / "store.sqlite"), "chunk_images": args.chunk_images, "workers": args.workers},
    }
    images = write_images(work / "images", sizes, n + 1, seed=args.seed)
    stage_images = {s: p[1:] for s, p in images.items()}
    warmup = [p[0] for p in images.values()]

    from iqa_core.engine import Pipeline
    from iqa_core.store import Store
    from iqa_plugins.segmenters.sam2 import SAM2Segmenter

    store_path = work / "store.sqlite"
    for suffix in ("", "-wal", "-shm"):  # fresh store: every image is new to it
        Path(f"{store_path}{suffix}").unlink(missing_ok=True)
    pipe = Pipeline.from_recipe(recipe, Store(store_path))
    t0 = time.perf_counter()
    pipe.load()
    load_s = time.perf_counter() - t0
    _, scorer, standard = pipe.scorers[0]

    result: dict[str, Any] = {
        "mode": "tiny" if tiny else "full",
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "models": {
            "segmenter": {"arch": seg_arch, "max_side": args.max_side},
            "vlm": {
                "arch": vlm_arch,
                "params": sum(p.numel() for p in scorer.model.parameters()),
                "lm_params": language_model_params(scorer.model),
                "dtype": str(next(scorer.model.parameters()).dtype),
            },
        },
        "settings": {
            "images_per_size": n,
            "sizes": [label(s) for s in sizes],
            "batch_size": batch,
            "chunk_images": args.chunk_images,
            "workers": args.workers,
        },
        "peak_tflops": peak,
        "build_s": build_s,
        "load_s": load_s,
    }

    # ---- segmentation stage
    result["segmentation"] = time_segmentation(seg_params, stage_images, device, cuda, mem, args.seg_permissive)
    # ---- scoring stage (views from the first size)
    views = sample_views(stage_images[sizes[0]], per_image=8)
    result["scoring"] = time_scoring(scorer, standard, views, cuda, mem, peak, args.naive_views or (8 if tiny else 32))

    # ---- end to end, product vs naive
    pipe.score_many([str(p) for p in warmup])
    stock_seg = SAM2Segmenter({**seg_params, "device": device, "fast_postprocess": False})
    stock_seg.load()
    e2e: dict[str, Any] = {}
    for size in sizes:
        paths = stage_images[size]
        row = {"pipeline": pipeline_end_to_end(pipe, paths, cuda, mem)}
        naive_paths = paths[: args.naive_images or len(paths)]
        row["naive"] = naive_end_to_end(stock_seg, scorer, standard, pipe.recipe.regions, naive_paths, cuda, mem)
        row["speedup"] = row["pipeline"]["images_per_s"] / row["naive"]["images_per_s"]
        e2e[label(size)] = row
    result["end_to_end"] = e2e
    result["peak_gpu_memory_gib"] = mem.peaks if cuda else "n/a"
    result["total_s"] = time.perf_counter() - t_start
    return result


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def table(r: dict[str, Any]) -> str:
    lines = [
        f"iqa throughput — {r['mode']} mode on {r['device']}",
        f"  segmenter: {r['models']['segmenter']['arch']}",
        f"  VLM: {r['models']['vlm']['arch']}, {r['models']['vlm']['params'] / 1e9:.3g} B params "
        f"(LM {r['models']['vlm']['lm_params'] / 1e9:.3g} B)",
        "",
    ]
    lines.append(f"{'segmentation':<28}{'size':>11}{'plugin s/img':>14}{'stock s/img':>13}{'masks':>7}{'speed-up':>10}")
    for setting, rows in r["segmentation"].items():
        for size, row in rows.items():
            lines.append(
                f"  {setting:<26}{size:>11}{fmt(row['fast_s_per_image']):>14}"
                f"{fmt(row['stock_s_per_image']):>13}{fmt(row['fast_masks_per_image']):>7}"
                f"{fmt(row['speedup']):>9}x"
            )
    s = r["scoring"]
    lines += [
        "",
        f"scoring (batch {s['batch_size']}, {s['views']} views, {fmt(s['prompt_tokens_per_view'])} prompt tokens/view)",
        f"  batched forward: {fmt(s['views_per_s'])} views/s ({fmt(s['s_per_view'] * 1e3)} ms/view)",
        f"  naive generate(max_new_tokens=1): {fmt(s['naive_views_per_s'])} views/s "
        f"({fmt(s['naive_s_per_view'] * 1e3)} ms/view)  speed-up {fmt(s['speedup'])}x",
        f"  FLOPs/view {fmt(s['flops_per_view'])}; LM fraction of FLOP floor "
        f"{fmt(s['lm_flop_floor_fraction'])} (peak {fmt(r['peak_tflops'])} TFLOP/s)",
        "",
    ]
    lines.append(
        f"{'end to end':<14}{'size':>11}{'images/s':>10}{'views/s':>10}{'views/img':>11}"
        f"{'naive img/s':>13}{'speed-up':>10}"
    )
    for size, row in r["end_to_end"].items():
        p, nv = row["pipeline"], row["naive"]
        lines.append(
            f"{'':<14}{size:>11}{fmt(p['images_per_s']):>10}{fmt(p['views_per_s']):>10}"
            f"{fmt(p['views_per_image']):>11}{fmt(nv['images_per_s']):>13}"
            f"{fmt(row['speedup']):>9}x"
        )
    peaks = r["peak_gpu_memory_gib"]
    mem = "n/a" if peaks == "n/a" else ", ".join(f"{k} {fmt(v)} GiB" for k, v in peaks.items())
    lines += [
        "",
        f"peak GPU memory: {mem}",
        f"build {r['build_s']:.1f} s, load {r['load_s']:.1f} s, total {r['total_s']:.1f} s",
    ]
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
        help="real-size models: SAM2.1 hiera-L + Janus-Pro-7B dims (default on GPU)",
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
        help="views in the per-view generate baseline (default 32 full, 8 tiny)",
    )
    ap.add_argument(
        "--naive-images", type=int, default=None, help="images per size in the naive end-to-end baseline (default all)"
    )
    ap.add_argument(
        "--seg-permissive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time segmentation with every candidate passing the filters (default on full, off tiny)",
    )
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
