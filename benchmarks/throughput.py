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

Weights are random, so scores mean nothing: only shapes, token counts and time matter. The
stages are timed in ``stage_timing.py`` and ``end_to_end.py``; ``report.py`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.end_to_end import naive_end_to_end, pipeline_end_to_end  # noqa: E402
from benchmarks.images import write_images  # noqa: E402
from benchmarks.measure import Memory  # noqa: E402
from benchmarks.models import (  # noqa: E402
    JANUS_PRO_7B,
    QWEN25_VL_7B,
    QWEN25_VL_TINY,
    build_janus,
    build_qwen25_vl,
    language_model_params,
)
from benchmarks.regions import FixedRegions  # noqa: E402
from benchmarks.report import issue_rows, json_default, table  # noqa: E402
from benchmarks.stage_timing import PERMISSIVE_SEG, label, realistic_views, time_scoring, time_segmentation  # noqa: E402

SAM2_LARGE = "configs/sam2.1/sam2.1_hiera_l.yaml"
SAM2_TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        w, _, h = item.strip().lower().partition("x")
        sizes.append((int(w), int(h)))
    return sizes


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
        args.json.write_text(json.dumps(result, indent=2, default=json_default) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
