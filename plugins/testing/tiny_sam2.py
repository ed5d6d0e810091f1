"""A randomly initialised SAM2 hiera-tiny at a small input size, for tests that need the
real SAM2 code path on a CPU in seconds (no Hub access)."""

from __future__ import annotations

from pathlib import Path

TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def build_tiny_sam2(directory: str | Path, image_size: int = 256, seed: int = 0) -> dict[str, str]:
    """Write ``tiny_sam2.yaml`` and ``tiny_sam2.pt`` into ``directory``.

    The config is the package's hiera-tiny config with ``model.image_size`` set to
    ``image_size`` (a multiple of 64); the checkpoint is its random initialisation in
    the released checkpoints' ``{"model": state_dict}`` format. Returns the
    ``config`` and ``checkpoint`` params a recipe passes to the ``sam2`` segmenter.
    """
    import torch
    from omegaconf import OmegaConf
    from sam2.build_sam import build_sam2

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    override = [f"++model.image_size={image_size}"]
    model = build_sam2(TINY_CONFIG, None, device="cpu", hydra_overrides_extra=override)
    checkpoint = directory / "tiny_sam2.pt"
    torch.save({"model": model.state_dict()}, checkpoint)

    import sam2

    packaged = Path(sam2.__file__).parent / TINY_CONFIG
    cfg = OmegaConf.load(packaged)
    cfg.model.image_size = image_size
    config = directory / "tiny_sam2.yaml"
    config.write_text("# @package _global_\n" + OmegaConf.to_yaml(cfg))
    return {"config": str(config), "checkpoint": str(checkpoint)}
