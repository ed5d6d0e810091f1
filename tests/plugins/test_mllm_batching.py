"""What a view costs, known before the processor runs: ``view_tokens`` and ``input_size`` of the
MLLM scorers against what the real processors of tiny checkpoints produce, the buckets formed
from them (each view processed once), ``pad_slack``, the preprocessing device and the
attention implementation.

Families: Qwen2-VL / Qwen2.5-VL / Qwen3-VL (size-dependent, ``smart_resize``), LLaVA-1.5 and
Gemma 3 (fixed size), Idefics3, InternVL and LLaVA-OneVision (tiled), Janus (fixed 576-style
count, padded square). Sizes cover landscape, portrait, square, slivers (padded to 1:100),
views smaller than the processor's minimum and larger than the scorer's ``max_pixels`` cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from iqa_core.api import View  # noqa: E402
from iqa_plugins.scorers.hf_vlm import HFVLMScorer  # noqa: E402
from iqa_plugins.scorers.janus_pro import JanusProScorer  # noqa: E402
from iqa_plugins.scorers.mllm.inputs import group_lengths  # noqa: E402
from iqa_plugins.standards.levels import WordStandard  # noqa: E402
from iqa_plugins.testing import tiny_families, tiny_vlm  # noqa: E402

STD = WordStandard({"levels": 7})
# family: (builder module, scorer class, extra params). max_pixels 20000 caps the big sizes below.
FAMILIES: dict[str, tuple[Any, type, dict[str, Any]]] = {
    "qwen2_vl": (tiny_vlm, HFVLMScorer, {"max_pixels": 20_000}),
    "qwen2_5_vl": (tiny_vlm, HFVLMScorer, {"max_pixels": 20_000}),
    "qwen3_vl": (tiny_vlm, HFVLMScorer, {"max_pixels": 20_000, "template_options": {"enable_thinking": False}}),
    "llava": (tiny_vlm, HFVLMScorer, {}),
    "gemma3": (tiny_families, HFVLMScorer, {}),
    "idefics3": (tiny_families, HFVLMScorer, {}),
    "internvl": (tiny_families, HFVLMScorer, {}),
    "llava_onevision": (tiny_families, HFVLMScorer, {}),
    "janus": (tiny_vlm, JanusProScorer, {}),
}
QWEN = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
# (width, height)
SIZES = [(40, 30), (28, 70), (50, 50), (90, 24), (300, 200), (1000, 20), (3, 50), (1, 1), (400, 500), (1024, 768)]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("view_tokens")
    return {name: Path(getattr(module, f"build_{name}")(root / name)) for name, (module, *_) in FAMILIES.items()}


def load(model_dirs: dict[str, Path], family: str, **params: Any) -> Any:
    _, cls, extra = FAMILIES[family]
    scorer = cls({"model": str(model_dirs[family]), "device": "cpu", **extra, **params})
    scorer.load(STD)
    return scorer


@pytest.fixture(scope="module")
def scorers(model_dirs: dict[str, Path]) -> dict[str, Any]:
    return {family: load(model_dirs, family) for family in FAMILIES}


def view(size: tuple[int, int], seed: int = 0) -> View:
    w, h = size
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return View(Image.fromarray(pixels), key=f"{w}x{h}")


def prompt_length(scorer: Any, v: View) -> int:
    ((_, inputs),) = scorer.prepare([v], STD).buckets
    return int(inputs["input_ids"].shape[1])


@pytest.mark.parametrize("family", FAMILIES)
def test_view_tokens_are_the_processors_prompt_length(scorers, family):
    scorer = scorers[family]
    expected = [prompt_length(scorer, view(size)) for size in SIZES]
    assert [scorer.view_tokens(size) for size in SIZES] == expected
    if family in QWEN or family in ("idefics3", "internvl", "llava_onevision"):
        assert len(set(expected)) > 2, "sizes should give these families prompts of several lengths"


def test_idefics3_view_tokens_follow_a_processor_that_writes_its_tiles_differently(model_dirs, monkeypatch):
    """The tile count comes from the processor's own expansion, not a copy of its arithmetic: a
    processor that marks each row with one more token (as a future release might) changes what
    ``view_tokens`` says by exactly what it changes in the prompt."""
    from transformers import Idefics3Processor

    before = load(model_dirs, "idefics3")
    write = Idefics3Processor.replace_image_token

    def one_more_per_row(self, image_inputs, image_idx, **kwargs):
        text = write(self, image_inputs, image_idx, **kwargs)
        return text.replace("\n", self.fake_image_token + "\n")

    monkeypatch.setattr(Idefics3Processor, "replace_image_token", one_more_per_row)
    after = load(model_dirs, "idefics3")
    sizes = [(40, 30), (300, 200), (28, 70), (1024, 768)]
    expected = [prompt_length(after, view(size)) for size in sizes]
    assert [after.view_tokens(size) for size in sizes] == expected
    assert expected != [before.view_tokens(size) for size in sizes]


def grid_size(scorer: Any, size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) in pixels of the grid Qwen's processor cut a view of ``size`` into."""
    ((_, inputs),) = scorer.prepare([view(size)], STD).buckets
    _, grid_h, grid_w = (int(n) for n in inputs["image_grid_thw"][0])
    patch = scorer.processor.image_processor.patch_size
    return grid_w * patch, grid_h * patch


@pytest.mark.parametrize("family", QWEN)
def test_qwen_input_size_is_the_processors_resize(scorers, family):
    scorer = scorers[family]
    assert [scorer.processor_size(size) for size in SIZES] == [grid_size(scorer, size) for size in SIZES]
    sizes = [size for size in SIZES if scorer.input_size(size) is not None]
    assert len(sizes) >= 7 and all(scorer.input_size(size) == grid_size(scorer, size) for size in sizes)


@pytest.mark.parametrize("family", QWEN)
def test_a_view_shrunk_to_its_input_size_keeps_its_tokens(scorers, family):
    """``input_size`` is a size the processor keeps: a view shrunk to it gets the same tokens.
    Where ``smart_resize`` would move it again (extreme aspect ratios with the tiny models'
    16-token budget, e.g. 377x83 -> 224x28 -> 252x56) it says None."""
    scorer = scorers[family]
    rng = np.random.default_rng(0)
    sizes = [(int(w), int(h)) for w, h in rng.integers(1, 3000, (300, 2))]
    known = [size for size in sizes if scorer.input_size(size) is not None]
    assert 0.5 * len(sizes) < len(known) < len(sizes)
    for size in known:
        shrunk = scorer.input_size(size)
        assert scorer.input_size(shrunk) == shrunk
        assert scorer.view_tokens(shrunk) == scorer.view_tokens(size)
    assert scorer.input_size((377, 83)) is None


def test_qwen_counts_follow_processor_options(model_dirs, scorers):
    """min/max pixels set through ``processor_options`` change what the hooks say, as they
    change what the processor does."""
    pixels = 4 * 28 * 28
    scorer = load(model_dirs, "qwen2_vl", processor_options={"size": {"shortest_edge": pixels, "longest_edge": pixels}})
    for size in [(300, 200), (50, 50), (28, 70), (1024, 768)]:
        assert scorer.processor_size(size) == grid_size(scorer, size) != scorers["qwen2_vl"].processor_size(size)
        assert scorer.view_tokens(size) == prompt_length(scorer, view(size)) < scorers["qwen2_vl"].view_tokens(size)


def test_janus_input_size_is_the_content_inside_its_square(scorers):
    """A white view inside Janus' padded square: its non-background rows and columns are the
    size ``input_size`` says (long side the model's input side, aspect kept)."""
    scorer = scorers["janus"]
    side = int(scorer.processor.image_processor.size["height"])
    for size in [(300, 200), (60, 200), (1000, 20), (1, 1), (500, 500)]:
        white = View(Image.new("RGB", size, (255, 255, 255)), "white")
        ((_, inputs),) = scorer.prepare([white], STD).buckets
        content = inputs["pixel_values"][0, 0] > 0.9  # white normalises to 1, the grey background to ~0
        width, height = int(content.any(dim=0).sum()), int(content.any(dim=1).sum())
        assert scorer.input_size(size) == (width, height), size
        assert max(width, height) == side


def test_families_without_a_resize_rule_give_no_input_size(scorers):
    assert scorers["llava"].input_size((300, 200)) is None
    assert scorers["idefics3"].input_size((300, 200)) is None


def test_hooks_say_nothing_before_load(model_dirs):
    scorer = HFVLMScorer({"model": str(model_dirs["qwen2_vl"]), "device": "cpu"})
    assert scorer.view_tokens((100, 100)) is None
    assert scorer.input_size((100, 100)) is None
    assert JanusProScorer({"model": str(model_dirs["janus"]), "device": "cpu"}).input_size((10, 10)) is None


# ------------------------------------------------------------------ buckets


def counted(scorer: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many images each processor call of ``scorer`` gets."""
    calls: list[int] = []
    process = scorer.process

    def spy(text: str, images: list[Any]) -> Any:
        calls.append(len(images))
        return process(text, images)

    monkeypatch.setattr(scorer, "process", spy)
    return calls


def test_each_view_is_processed_once(scorers, monkeypatch):
    """Buckets come from the counts, so no view is processed twice (before: once all together,
    then again per bucket)."""
    scorer = scorers["qwen2_vl"]
    views = [view(size, seed) for seed, size in enumerate([(40, 30), (28, 70), (40, 30), (50, 50)])]
    calls = counted(scorer, monkeypatch)
    prepared = scorer.prepare(views, STD)
    assert sorted(rows for rows, _ in prepared.buckets) == [[0, 2], [1], [3]]
    assert all(bool(inputs["attention_mask"].all()) for _, inputs in prepared.buckets)
    assert sorted(calls) == [1, 1, 2]


def test_wrong_counts_fall_back_to_the_processors_lengths(scorers, monkeypatch):
    """Should a processor's count be wrong, buckets are still of equal length."""
    scorer = scorers["qwen2_vl"]
    monkeypatch.setattr(scorer, "image_tokens", lambda size: 7)
    views = [view(size, seed) for seed, size in enumerate([(40, 30), (28, 70), (40, 30)])]
    prepared = scorer.prepare(views, STD)
    assert sorted(rows for rows, _ in prepared.buckets) == [[0, 2], [1]]
    assert all(bool(inputs["attention_mask"].all()) for _, inputs in prepared.buckets)


def test_processor_without_counts_still_buckets(model_dirs, monkeypatch):
    scorer = HFVLMScorer({"model": str(model_dirs["qwen2_vl"]), "device": "cpu"})
    monkeypatch.setattr(HFVLMScorer, "image_tokens", lambda self, size: None)
    scorer.load(STD)
    assert scorer.view_tokens((40, 30)) is None
    views = [view(size, seed) for seed, size in enumerate([(40, 30), (28, 70), (40, 30)])]
    assert sorted(rows for rows, _ in scorer.prepare(views, STD).buckets) == [[0, 2], [1]]


@pytest.mark.parametrize(
    ("lengths", "slack", "groups"),
    [
        ([5, 7, 5, 9], 0, [[0, 2], [1], [3]]),
        ([10, 12, 11, 20, 13, 21], 2, [[0, 2, 1], [4], [3, 5]]),
        ([10, 12, 11, 20, 13, 21], 100, [[0, 2, 1, 4, 3, 5]]),
        ([], 3, []),
    ],
)
def test_group_lengths(lengths, slack, groups):
    assert group_lengths(lengths, slack) == groups


def test_pad_slack_shares_a_padded_pass_within_tolerance(model_dirs):
    """``pad_slack`` puts prompts of different lengths into one left-padded pass; in float32
    their probabilities stay within 1e-6 of the exact-length (unpadded) ones (seen: ~1e-8;
    letting the model attend to the padding moves them by ~2e-4, two views differ by ~4e-4)."""
    exact = load(model_dirs, "qwen2_5_vl")
    padded = load(model_dirs, "qwen2_5_vl", pad_slack=64)
    views = [view(size, seed) for seed, size in enumerate([(40, 30), (28, 70), (90, 24), (300, 200), (50, 50)])]
    lengths = {exact.view_tokens(v.image.size) for v in views}
    assert len(lengths) >= 3 and max(lengths) - min(lengths) <= 64
    prepared = padded.prepare(views, STD)
    assert len(prepared.buckets) == 1 and not bool(prepared.buckets[0][1]["attention_mask"].all())
    assert len(exact.prepare(views, STD).buckets) == len(lengths)
    np.testing.assert_allclose(padded.score(views, STD).probs, exact.score(views, STD).probs, rtol=0, atol=1e-6)
    assert exact.cache_key() != padded.cache_key()  # padded scores are stored apart


# ------------------------------------------------------------------ preprocessing device


@pytest.mark.parametrize("family", FAMILIES)
def test_processor_gets_the_preprocessing_device(scorers, monkeypatch, family):
    """On CUDA the torchvision image processor resizes and normalises on the model's device; the
    same path on the CPU gives the same inputs as the default call, for every family."""
    scorer = scorers[family]
    assert scorer.preprocess_device() is None  # a CPU scorer keeps the default path
    with monkeypatch.context() as patch:  # transformers 5 loads torchvision-backed processors by default
        patch.setattr(scorer, "device", torch.device("cuda", 0))
        assert scorer.preprocess_device() == torch.device("cuda", 0)
    views = [view((300, 200)), view((40, 30), 1)]
    plain = scorer.prepare(views, STD)
    seen: list[Any] = []
    call = type(scorer.processor).__call__

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("device"))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(type(scorer.processor), "__call__", spy)
    monkeypatch.setattr(scorer, "preprocess_device", lambda: torch.device("cpu"))
    moved = scorer.prepare(views, STD)
    assert seen and all(device == torch.device("cpu") for device in seen)
    for (rows_a, a), (rows_b, b) in zip(plain.buckets, moved.buckets, strict=True):
        assert rows_a == rows_b and a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_attention_implementation_per_part(model_dirs, scorers):
    """``attn_implementation`` reaches ``from_pretrained``, per part; the scores and the cache
    key stay those of the default (eager and SDPA agree in float32)."""
    scorer = load(model_dirs, "qwen2_5_vl", attn_implementation={"vision_config": "eager", "text_config": "sdpa"})
    config = scorer.model.config
    assert (config.vision_config._attn_implementation, config.text_config._attn_implementation) == ("eager", "sdpa")
    assert scorers["qwen2_5_vl"].model.config.vision_config._attn_implementation == "sdpa"
    views = [view((300, 200)), view((40, 30), 1)]
    default = scorers["qwen2_5_vl"]
    np.testing.assert_allclose(scorer.score(views, STD).probs, default.score(views, STD).probs, rtol=0, atol=1e-6)
    assert scorer.cache_key() == default.cache_key()


@pytest.mark.parametrize("slack", [0, 16])
def test_benchmark_pass_counts_are_the_scorers(model_dirs, scorers, slack):
    """``vlm_split --passes`` counts, from ``view_tokens`` alone, the passes ``prepare`` makes."""
    from benchmarks.vlm_split import pass_counts

    scorer = scorers["qwen2_5_vl"] if slack == 0 else load(model_dirs, "qwen2_5_vl", pad_slack=slack)
    sizes = [(40, 30), (28, 70), (50, 50), (90, 24), (300, 200), (60, 45), (33, 81), (120, 40)]
    views = sorted(
        (view(size, seed) for seed, size in enumerate(sizes)), key=lambda v: scorer.view_tokens(v.image.size)
    )
    prepared = [scorer.prepare(views[i : i + 3], STD) for i in range(0, len(views), 3)]
    positions = sum(inputs["attention_mask"].numel() for p in prepared for _, inputs in p.buckets)
    real = sum(int(inputs["attention_mask"].sum()) for p in prepared for _, inputs in p.buckets)
    counted = pass_counts(scorer, sizes, 3, [slack])[slack]
    assert counted["passes_per_batch"] * len(prepared) == sum(len(p.buckets) for p in prepared)
    assert counted["padding"] == pytest.approx(1 - real / positions)
    assert (counted["padding"] > 0) == (slack > 0)
