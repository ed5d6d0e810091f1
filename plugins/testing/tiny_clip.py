"""A randomly initialised CLIP with the RN50 architecture at toy widths, for tests that need
the real open_clip code path on a CPU in seconds (no download)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# ModifiedResNet image tower (as RN50, one bottleneck per stage, width 8) and a
# one-layer text transformer over the stock 49408-token BPE vocabulary, so the
# packaged SimpleTokenizer works unchanged.
TINY_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def build_tiny_clip(directory: str | Path, seed: int = 0) -> dict[str, str]:
    """Write an open_clip ``local-dir`` model (config + random weights) into ``directory``.

    Returns the ``model`` param a recipe passes to the ``clip_iqa`` scorer.
    """
    import open_clip
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CFG)
    torch.save(model.state_dict(), directory / "open_clip_pytorch_model.bin")
    (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG}))
    return {"model": f"local-dir:{directory}"}
