"""Randomly initialised SAM2 models written like released checkpoints (no Hub access).

``build_tiny_sam2`` gives a hiera-tiny at a small input size, for tests that need the real
SAM2 code path on a CPU in seconds; ``build_random_sam2`` gives any packaged architecture
(hiera-T/S/B+/L) at its real size, for benchmarks.
"""

from __future__ import annotations

from pathlib import Path

TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SAM2_CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}

TINY_SIZE = 128  # input side of the tiny SAM2 the end-to-end tests and the demo build
# Random SAM2 weights predict low IoU and unstable masks: these thresholds keep all but
# duplicates, so object regions (not only the complement) reach the scorers.
PERMISSIVE = {
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": 0.7,
    "min_mask_region_area": 20,
    "points_per_side": 4,
    "max_side": TINY_SIZE,
}


def build_random_sam2(
    directory: str | Path,
    config: str = TINY_CONFIG,
    image_size: int | None = None,
    seed: int = 0,
    name: str | None = None,
) -> dict[str, str]:
    """Write ``<name>.yaml`` and ``<name>.pt`` into ``directory``: the package config
    ``config`` (``image_size`` overridden when given, a multiple of 64) and its random
    initialisation in the released checkpoints' ``{"model": state_dict}`` format.

    Returns the ``config`` and ``checkpoint`` params a recipe passes to the ``sam2``
    segmenter, so the model loads through the plugin's normal local-checkpoint path.
    """
    import torch
    from omegaconf import OmegaConf
    from sam2.build_sam import build_sam2

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = name or Path(config).stem
    torch.manual_seed(seed)
    override = [] if image_size is None else [f"++model.image_size={image_size}"]
    model = build_sam2(config, None, device="cpu", hydra_overrides_extra=override)
    checkpoint = directory / f"{name}.pt"
    torch.save({"model": model.state_dict()}, checkpoint)

    import sam2

    cfg = OmegaConf.load(Path(sam2.__file__).parent / config)
    if image_size is not None:
        cfg.model.image_size = image_size
    path = directory / f"{name}.yaml"
    path.write_text("# @package _global_\n" + OmegaConf.to_yaml(cfg))
    return {"config": str(path), "checkpoint": str(checkpoint)}


def build_tiny_sam2(directory: str | Path, image_size: int = 256, seed: int = 0) -> dict[str, str]:
    """Write ``tiny_sam2.yaml`` and ``tiny_sam2.pt`` into ``directory``.

    The config is the package's hiera-tiny config with ``model.image_size`` set to
    ``image_size`` (a multiple of 64); the checkpoint is its random initialisation in
    the released checkpoints' ``{"model": state_dict}`` format. Returns the
    ``config`` and ``checkpoint`` params a recipe passes to the ``sam2`` segmenter.
    """
    return build_random_sam2(directory, TINY_CONFIG, image_size, seed, name="tiny_sam2")
