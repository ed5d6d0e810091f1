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


# ------------------------------------------------ against the references, on shared random weights

# pyiqa's clipiqa (pyiqa/archs/clipiqa_arch.py): five (good, bad) pairs, P(good) per pair, averaged.
PYIQA_PROMPTS = [
    "Good image", "bad image", "Sharp image", "blurry image", "sharp edges", "blurry edges",
    "High resolution image", "low resolution image", "Noise-free image", "noisy image",
]  # fmt: skip
# IceClear's CLIP-IQA: one pair, P("Good photo.").
ICECLEAR_PROMPTS = ["Good photo.", "Bad photo."]


def reference_p_good(scorer: CLIPIQAScorer, views: list[View], prompts: list[str]) -> np.ndarray:
    """The references' computation with open_clip's own towers: CLIP's image encoder with the
    attention pool's positional embedding off (64 px: the tiny model's native size), the text
    encoder on the prompts, logit_scale-scaled cosine logits, softmax per (good, bad) pair."""
    import open_clip
    import torch

    model = scorer._model
    pool = model.visual.attnpool
    saved = pool.positional_embedding.data.clone()
    try:
        pool.positional_embedding.data.zero_()
        with torch.no_grad():
            pixels = torch.stack([scorer._to_tensor(v.image) for v in views])
            image = model.encode_image(pixels, normalize=True)
            text = model.encode_text(open_clip.get_tokenizer("RN50")(prompts), normalize=True)
            logits = model.logit_scale.exp() * image @ text.T
    finally:
        pool.positional_embedding.data.copy_(saved)
    return logits.view(len(views), -1, 2).softmax(dim=-1)[..., 0].mean(dim=1).numpy()


@pytest.mark.parametrize(("preset", "prompts"), [("iceclear", ICECLEAR_PROMPTS), ("pyiqa", PYIQA_PROMPTS)])
def test_antonym_sets_match_their_reference(tiny: dict[str, str], preset: str, prompts: list[str]) -> None:
    s = CLIPIQAScorer({**tiny, "device": "cpu", "antonyms": preset})
    views = [view(64, 64, seed) for seed in range(6)]
    ours = s.score(views, STANDARD).probs[:, 1]  # P(good) = the expected value over values (0, 1)
    np.testing.assert_allclose(ours, reference_p_good(s, views, prompts), atol=1e-6)


def test_the_two_antonym_sets_give_different_scores(tiny: dict[str, str], scorer: CLIPIQAScorer) -> None:
    views = [view(64, 64, seed) for seed in range(4)]
    pyiqa = CLIPIQAScorer({**tiny, "device": "cpu", "antonyms": "pyiqa"})
    assert not np.allclose(scorer.score(views, STANDARD).probs, pyiqa.score(views, STANDARD).probs, atol=1e-3)


def test_antonyms_take_a_preset_one_flat_pair_or_pairs() -> None:
    from pydantic import ValidationError

    assert CLIPIQAScorer().params.antonyms == [("Bad photo.", "Good photo.")]
    assert len(CLIPIQAScorer({"antonyms": "pyiqa"}).params.antonyms) == 5
    assert CLIPIQAScorer({"antonyms": ["ugly", "nice"]}).params.antonyms == [("ugly", "nice")]
    assert CLIPIQAScorer({"antonyms": [["a", "b"], ["c", "d"]]}).params.antonyms == [("a", "b"), ("c", "d")]
    with pytest.raises(ValidationError, match="unknown antonym set 'pyiq'; sets: iceclear, pyiqa"):
        CLIPIQAScorer({"antonyms": "pyiq"})
    with pytest.raises(ValidationError, match="at least one"):
        CLIPIQAScorer({"antonyms": []})


def test_float32_by_default_even_where_auto_would_pick_bf16(tiny: dict[str, str]) -> None:
    import torch

    s = CLIPIQAScorer({**tiny, "device": "cpu"})
    s.load(STANDARD)
    assert s.params.dtype == "float32" and s._dtype == torch.float32


def test_quick_gelu_is_inferred_for_openai_architecture_files() -> None:
    import open_clip

    from iqa_plugins.scorers.clip_iqa import infer_quick_gelu

    assert infer_quick_gelu(open_clip, "RN50", "openai") is True
    assert infer_quick_gelu(open_clip, "RN50", "/weights/RN50.pt") is True  # every RN50 release: QuickGELU
    assert infer_quick_gelu(open_clip, "RN101", "rn101.safetensors") is True
    with pytest.raises(IQAError, match="its released weights differ.*set quick_gelu"):
        infer_quick_gelu(open_clip, "ViT-B-32", "/weights/vit.pt")


def test_a_weights_file_without_known_activation_needs_quick_gelu(tiny: dict[str, str], tmp_path: Path) -> None:
    """The tiny architecture registered by name and loaded from a bare weights file, as the
    offline route does: QuickGELU cannot be inferred, must be set, and changes the scores."""
    import json

    import open_clip

    folder = Path(tiny["model"].removeprefix("local-dir:"))
    cfg = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    cfg = {k: v for k, v in cfg.items() if k != "quick_gelu"}  # like RN50.json: the activation is not in it
    (tmp_path / "tiny-rn-test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "tiny-rn-test.json")
    weights = str(folder / "open_clip_pytorch_model.bin")
    base = {"model": "tiny-rn-test", "pretrained": weights, "device": "cpu"}
    with pytest.raises(IQAError, match="cannot tell whether .* uses QuickGELU"):
        CLIPIQAScorer(base).load(STANDARD)
    views = [view(64, 64, seed) for seed in range(3)]
    quick = CLIPIQAScorer({**base, "quick_gelu": True}).score(views, STANDARD).probs
    gelu = CLIPIQAScorer({**base, "quick_gelu": False}).score(views, STANDARD).probs
    dir_model = CLIPIQAScorer({**tiny, "device": "cpu"}).score(views, STANDARD).probs  # its config says QuickGELU
    np.testing.assert_allclose(quick, dir_model, atol=1e-6)
    assert np.abs(quick - gelu).max() > 1e-5
