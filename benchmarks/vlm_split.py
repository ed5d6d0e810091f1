"""Where one scorer batch's time goes: processor (CPU), vision tower, language model, padding.

``split_batch`` times ``scorer.prepare`` (the processor: image resizing, patching, tokenising,
left padding), then one ``scorer.forward`` with hooks on the vision tower and the language
model; the rest of the forward (rope index, merging image features into the embeddings, the
LM head) is ``other``. ``padding`` is the share of the positions that are left padding, over the
scorer's length buckets (one forward pass each), and ``padding_s`` the language model time it
costs (its time is close to linear in tokens).

Run as a script it profiles ``hf_vlm`` on the CPU with a Qwen2.5-VL at test size and at a
mid size (``benchmarks/models.py``) on one 1024x768 image's views: by default the real
workload's (``--views regions``: the whole image, the 7 boxes of ``benchmarks/regions.py``'s
fixed masks, 100x123 to 922x653 px, and the complement's box), or the whole image and random
crops (``--views random``). On the CPU the seconds are process time, the fastest of
``--repeat`` runs, so a busy shared machine does not inflate them. ``--pad-slack`` sets the
scorer's ``pad_slack`` (a large value: one padded pass, as before length buckets):

    OMP_NUM_THREADS=1 python benchmarks/vlm_split.py --dims tiny,mid --batch-size 9
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import Busy, Timer  # noqa: E402


def vision_module(model: Any) -> Any:
    """The vision tower of a transformers VLM (Qwen2-VL ``visual``, Janus ``vision_model``, ...)."""
    inner = getattr(model, "model", model)
    for name in ("visual", "vision_model", "vision_tower"):
        module = getattr(inner, name, None)
        if module is not None:
            return module
    raise AttributeError(f"no vision tower found on {type(model).__name__}")


def language_module(model: Any) -> Any:
    inner = getattr(model, "model", model)
    return getattr(inner, "language_model", None) or model.language_model


class CPUSeconds:
    """Processor seconds (``time.process_time``, all threads) inside the forward passes of
    ``modules``, or of a block (``with``): on a shared CPU box the time a part costs, not the
    time it waited for a core."""

    def __init__(self, modules: list[Any] = ()) -> None:
        self.s = 0.0
        self._handles = [
            h for m in modules for h in (m.register_forward_pre_hook(self._enter), m.register_forward_hook(self._exit))
        ]

    def _enter(self, *_: Any) -> None:
        self._t = time.process_time()

    def _exit(self, *_: Any) -> None:
        self.s += time.process_time() - self._t

    def __enter__(self) -> CPUSeconds:
        self._enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit()

    def seconds(self) -> float:
        return self.s

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def time_batch(scorer: Any, views: list[Any], standard: Any, cuda: bool) -> tuple[Any, float, float, float, float]:
    """(prepared inputs, processor, forward, vision tower, language model seconds) of one batch:
    CUDA-synchronised wall time on a GPU, CPU time on the CPU."""
    timer = (lambda: Timer(cuda)) if cuda else CPUSeconds
    with timer() as processor:
        inputs = scorer.prepare(views, standard)
    parts = [vision_module(scorer.model)], [language_module(scorer.model)]
    vision, language = (Busy(p, cuda) if cuda else CPUSeconds(p) for p in parts)
    try:
        with timer() as forward:
            scorer.forward(inputs, standard)
        return inputs, processor.s, forward.s, vision.seconds(), language.seconds()
    finally:
        vision.close()
        language.close()


def split_batch(scorer: Any, views: list[Any], standard: Any, cuda: bool, repeat: int = 1) -> dict[str, Any]:
    """Seconds per view of each part of scoring ``views`` as one batch (after a warm-up; the
    fastest of ``repeat`` runs). On the CPU the seconds are processor time, so other work on
    the machine does not inflate them."""
    scorer.forward(scorer.prepare(views, standard), standard)  # warm-up
    runs = [time_batch(scorer, views, standard, cuda) for _ in range(repeat)]
    inputs, processor_s, forward_s, vision_s, language_s = min(runs, key=lambda run: run[1] + run[2])
    masks = [bucket["attention_mask"] for _, bucket in inputs.buckets]  # one forward per length bucket
    padding = 1.0 - sum(float(m.sum()) for m in masks) / sum(m.numel() for m in masks)
    n = len(views)
    total = processor_s + forward_s
    other_s = max(0.0, forward_s - vision_s - language_s)
    return {
        "views": n,
        "clock": "cuda wall" if cuda else "cpu process time",
        "buckets": len(masks),
        "positions": sum(m.numel() for m in masks),
        "tokens_min": min(int(m.sum(1).min()) for m in masks),
        "tokens_max": max(int(m.sum(1).max()) for m in masks),
        "padding": padding,
        "s_per_view": total / n,
        "processor_s_per_view": processor_s / n,
        "vision_s_per_view": vision_s / n,
        "language_model_s_per_view": language_s / n,
        "padding_s_per_view": language_s * padding / n,
        "other_s_per_view": other_s / n,
        "shares": {
            "processor": processor_s / total,
            "vision": vision_s / total,
            "language_model": language_s / total,
            "of_which_padding": language_s * padding / total,
            "other": other_s / total,
        },
    }


def crop_views(image: Any, n: int, seed: int = 0) -> list[Any]:
    """The whole image and ``n - 1`` random crops from 1/6 to 1/2 of each side."""
    import numpy as np

    from iqa_core.api import View

    rng = np.random.default_rng(seed)
    w, h = image.size
    views = [View(image, key="whole")]
    for k in range(n - 1):
        cw, ch = int(rng.integers(w // 6, w // 2)), int(rng.integers(h // 6, h // 2))
        x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        views.append(View(image.crop((x, y, x + cw, y + ch)), key=str(k)))
    return views


def region_views(image: Any) -> list[Any]:
    """The views the pipeline cuts from ``image`` with ``benchmarks/regions.py``'s fixed masks
    (the real workload's size mix): the whole image, 7 object boxes of mixed sizes and the
    complement's box, at the benchmark recipe's region settings."""
    import numpy as np

    from benchmarks.regions import FixedRegions
    from iqa_core.api import View
    from iqa_core.regions import build_regions, crop_view

    masks = FixedRegions(None, max_side=max(image.size)).segment(np.asarray(image))
    views = []
    for k, region in enumerate(build_regions(masks, image.size, 0.01, True)):
        mode = "whole" if region.kind == "global" else "bbox"
        views.append(View(crop_view(image, region, mode, 32), key=f"{region.kind}:{k}"))
    return views


# Photo sizes of common IQA sets (KonIQ 1024x768, KADID 512x384, LIVE Challenge 500x500, SPAQ
# and phone photos resized, portrait and landscape): the region boxes of each differ in size.
MIXED_SIZES = ((1024, 768), (768, 1024), (1280, 720), (800, 600), (512, 384), (500, 500), (1024, 683), (1600, 1200))


def pass_counts(scorer: Any, sizes: list[tuple[int, int]], batch_size: int, slacks: list[int]) -> dict[int, Any]:
    """Forward passes the scorer makes of views of ``sizes`` batched as the engine does (sorted
    by ``view_tokens``, ``batch_size`` at a time), per ``pad_slack``: passes per batch, and
    the share of positions that are padding. Needs only the processor's token counts."""
    from iqa_plugins.scorers.mllm.inputs import group_lengths

    tokens = sorted(scorer.view_tokens(size) for size in sizes)
    batches = [tokens[i : i + batch_size] for i in range(0, len(tokens), batch_size)]
    out = {}
    for slack in slacks:
        passes = positions = 0
        for batch in batches:
            groups = group_lengths(batch, slack)
            passes += len(groups)
            positions += sum(len(g) * max(batch[i] for i in g) for g in groups)
        out[slack] = {
            "passes_per_batch": passes / len(batches),
            "views_per_pass": len(tokens) / passes,
            "padding": 1.0 - sum(tokens) / positions,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    from benchmarks.images import textured_image
    from benchmarks.models import QWEN25_VL_MID, QWEN25_VL_TINY, build_qwen25_vl, language_model_params
    from iqa_core.recipe import resolve

    dims = {"tiny": QWEN25_VL_TINY, "mid": QWEN25_VL_MID}
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", default="tiny,mid", help=f"of {','.join(dims)}")
    ap.add_argument("--batch-size", type=int, default=9, help="views per batch (9: one image's views)")
    ap.add_argument("--views", choices=("regions", "random"), default="regions", help="region boxes or random crops")
    ap.add_argument("--pad-slack", type=int, default=0, help="the scorer's pad_slack (0: exact-length buckets)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per batch; the fastest counts")
    ap.add_argument(
        "--passes",
        action="store_true",
        help="also count forward passes per batch for region views of mixed photo sizes",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    dtype = "bfloat16" if cuda else "float32"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="iqa-vlm-"))
    image = textured_image(1024, 768)
    views = region_views(image) if args.views == "regions" else crop_views(image, args.batch_size)
    views = (views * (1 + args.batch_size // len(views)))[: args.batch_size]
    rows = {}
    for name in args.dims.split(","):
        path = build_qwen25_vl(work / f"qwen25_vl_{name}", dims[name], args.device, dtype)
        params = {"model": str(path), "device": args.device}
        if args.pad_slack:
            params["pad_slack"] = args.pad_slack
        recipe = {
            "segmenter": {"name": "whole"},
            "standard": {"name": "word", "params": {"levels": 7}},
            "scorers": [{"name": "hf_vlm", "params": params}],
        }
        _, scorer, standard = resolve(recipe).scorers[0]
        scorer.load(standard)
        if args.passes:
            sizes = [v.image.size for size in MIXED_SIZES for v in region_views(textured_image(*size))]
            counts = pass_counts(scorer, sizes, 32, [0, 16, 32, 64, 128])
            rows[f"{name}_passes"] = {"views": len(sizes), "batch_size": 32, "by_pad_slack": counts}
            for slack, c in counts.items():
                print(
                    f"qwen2.5-vl {name:5} {len(sizes)} region views of {len(MIXED_SIZES)} photo sizes, batch 32, "
                    f"pad_slack {slack:3}: {c['passes_per_batch']:.1f} passes/batch, {c['views_per_pass']:.1f} "
                    f"views/pass, padding {c['padding']:.1%}",
                    flush=True,
                )
        row = split_batch(scorer, views, standard, cuda, args.repeat)
        row["lm_params"] = language_model_params(scorer.model)
        row["pad_slack"] = args.pad_slack
        row["view_sizes"] = [list(view.image.size) for view in views]
        rows[name] = row
        shares = ", ".join(f"{k} {v:.0%}" for k, v in row["shares"].items())
        print(
            f"qwen2.5-vl {name:5} batch {row['views']} ({row['tokens_min']}-{row['tokens_max']} tokens, "
            f"{row['buckets']} passes, padding {row['padding']:.0%}): {row['s_per_view'] * 1e3:.1f} ms/view; {shares}",
            flush=True,
        )
        del scorer
    result = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
