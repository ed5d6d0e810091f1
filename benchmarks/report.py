"""The throughput benchmark's report: the issue's table of targets, the printed table, JSON values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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


def json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
