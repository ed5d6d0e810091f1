"""The clip_iqa scorer on a randomly initialised RN50-architecture CLIP, loaded from a local dir."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from iqa_core.api import View  # noqa: E402
from iqa_core.errors import IQAError, ModelUnavailable  # noqa: E402
from iqa_plugins.scorers.clip_iqa import CLIPIQAScorer  # noqa: E402
from iqa_plugins.standards.levels import WordStandard  # noqa: E402
from iqa_plugins.testing.tiny_clip import build_tiny_clip  # noqa: E402

STANDARD = WordStandard({"levels": 5})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def scorer(tiny: dict[str, str]) -> CLIPIQAScorer:
    s = CLIPIQAScorer({**tiny, "device": "cpu"})
    s.load(STANDARD)
    return s


def view(h: int, w: int, seed: int = 0) -> View:
    pixels = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    return View(Image.fromarray(pixels), key=f"{h}x{w}:{seed}")


def test_antonym_mode_gives_p_good(scorer: CLIPIQAScorer) -> None:
    out = scorer.score([view(64, 64), view(96, 160, 1), view(64, 64, 2)], STANDARD)
    assert out.probs.shape == (3, 2) and out.values == (0.0, 1.0)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)
    assert ((out.probs >= 0) & (out.probs <= 1)).all()
    assert out.top_is_level is None


def test_any_resolution_and_batching_does_not_change_a_score(scorer: CLIPIQAScorer) -> None:
    views = [view(64, 64), view(120, 200, 1), view(10, 300, 2), view(64, 64, 3)]
    together = scorer.score(views, STANDARD).probs
    alone = np.concatenate([scorer.score([v], STANDARD).probs for v in views])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_deterministic(tiny: dict[str, str], scorer: CLIPIQAScorer) -> None:
    views = [view(80, 100, 4), view(50, 70, 5)]
    again = CLIPIQAScorer({**tiny, "device": "cpu"})
    np.testing.assert_array_equal(scorer.score(views, STANDARD).probs, again.score(views, STANDARD).probs)


def test_pooling_equals_open_clip_with_a_zero_positional_embedding(scorer: CLIPIQAScorer) -> None:
    import torch

    pixels = scorer._to_tensor(view(64, 64).image)[None]
    pool = scorer._model.visual.attnpool
    saved = pool.positional_embedding.data.clone()
    try:
        pool.positional_embedding.data.zero_()
        with torch.no_grad():
            reference = scorer._model.visual(pixels)
            ours = scorer._encode_images(pixels)
    finally:
        pool.positional_embedding.data.copy_(saved)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_standard_mode_scores_the_standards_levels(tiny: dict[str, str]) -> None:
    s = CLIPIQAScorer({**tiny, "device": "cpu", "mode": "standard"})
    out = s.score([view(64, 64), view(70, 90, 1)], STANDARD)
    assert out.probs.shape == (2, 5) and out.values == STANDARD.values
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)
    assert s._prompts(STANDARD)[0] == "A photo of Poor quality."


def test_max_side_bounds_the_input(tiny: dict[str, str]) -> None:
    s = CLIPIQAScorer({**tiny, "device": "cpu", "max_side": 64})
    assert s._resize(view(200, 400).image).size == (64, 32)
    assert s._resize(view(10, 20).image).size == (64, 32)  # lifted to the 32-pixel minimum


def test_offline_tag_is_model_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailable, match=r"RN50 \(openai\).*pretrained:"):
        CLIPIQAScorer({"device": "cpu"}).load(STANDARD)


def test_missing_local_weights_name_the_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "rn50.pt")
    with pytest.raises(ModelUnavailable, match="rn50.pt"):
        CLIPIQAScorer({"pretrained": missing, "device": "cpu"}).load(STANDARD)


def test_a_vit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import open_clip

    monkeypatch.setattr(
        open_clip,
        "create_model",
        lambda *a, **k: open_clip.CLIP(
            embed_dim=16,
            vision_cfg={"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
            text_cfg={"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1},
        ),
    )
    with pytest.raises(IQAError, match="ResNet"):
        CLIPIQAScorer({"model": "ViT-B-32", "device": "cpu"}).load(STANDARD)
