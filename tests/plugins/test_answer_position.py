"""The level tokens are read where the model writes the reply's label, for each real chat format.

Tiny random models of Janus-Pro, LLaVA-1.5, Qwen2-VL, Qwen2.5-VL and Qwen3-VL with tokenizers
that behave like the real ones (byte-level BPE with isolated digits; sentencepiece-style "▁")
and templates that render the real formats (:mod:`iqa_plugins.testing.tokenizers`).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from iqa_core.api import View  # noqa: E402
from iqa_core.errors import IQAError  # noqa: E402
from iqa_plugins.scorers.hf_vlm import HFVLMScorer  # noqa: E402
from iqa_plugins.scorers.janus_pro import JanusProScorer  # noqa: E402
from iqa_plugins.scorers.mllm.chat import assistant_turn, conversation, reply_opening  # noqa: E402
from iqa_plugins.standards.levels import NumberStandard, WordStandard  # noqa: E402
from iqa_plugins.testing import tiny_vlm  # noqa: E402

STD = WordStandard({"levels": 7})
NO_THINKING = {"template_options": {"enable_thinking": False}}
# name: (builder, scorer class, extra params, what the template writes before the reply's label)
FAMILIES = {
    "janus": ("janus", JanusProScorer, {}, " "),
    "llava": ("llava", HFVLMScorer, {}, " "),
    "qwen2_vl": ("qwen2_vl", HFVLMScorer, {}, ""),
    "qwen2_5_vl": ("qwen2_5_vl", HFVLMScorer, {}, ""),
    "qwen3_vl": ("qwen3_vl", HFVLMScorer, {}, "<think>\n\n</think>\n\n"),
    "qwen3_vl_no_thinking": ("qwen3_vl", HFVLMScorer, NO_THINKING, ""),
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("answer_position")
    builders = {builder for builder, *_ in FAMILIES.values()}
    return {name: str(getattr(tiny_vlm, f"build_{name}")(root / name)) for name in builders}


def load(model_dirs: dict[str, str], family: str) -> HFVLMScorer | JanusProScorer:
    builder, cls, extra, _ = FAMILIES[family]
    scorer = cls({"model": model_dirs[builder], "device": "cpu", **extra})
    scorer.load(STD)
    return scorer


@pytest.fixture(scope="module")
def scorers(model_dirs: dict[str, str]) -> dict[str, object]:
    return {family: load(model_dirs, family) for family in FAMILIES}


def random_views(n: int, seed: int = 0) -> list[View]:
    rng = np.random.default_rng(seed)
    views = []
    for i in range(n):
        h, w = (int(x) for x in rng.integers(20, 90, size=2))
        views.append(View(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), key=f"v{i}"))
    return views


def template_text(scorer, reply: str | None = None) -> str:
    """What the model's own template renders: the generation prompt, or the conversation with
    the assistant's ``reply`` (Janus: system text first, as the scorer sends it)."""
    janus = isinstance(scorer, JanusProScorer)
    turns = conversation("" if janus else STD.system, STD.user, "prepend" if janus else scorer.system_role(STD))
    text = scorer.render(turns if reply is None else [*turns, assistant_turn(reply)], reply is None)
    return f"{STD.system}\n\n{text}" if janus else text


def input_ids(scorer, text: str, image: Image.Image) -> list[int]:
    return scorer.process(text, [scorer.fit(image)])["input_ids"][0].tolist()


# ------------------------------------------------------------------ where the reply starts


@pytest.mark.parametrize("family", FAMILIES)
def test_reply_opening_of_each_format(scorers, family):
    scorer, opening = scorers[family], FAMILIES[family][3]
    turns = conversation(STD.system, STD.user, scorer.system_role(STD))
    assert reply_opening(scorer.render, turns, "7", family) == opening
    assert scorer.prompt(STD) == template_text(scorer) + opening


@pytest.mark.parametrize("family", FAMILIES)
def test_prepared_input_then_label_is_the_templates_reply(scorers, family):
    """The scorer's input followed by the label token is, token for token, how the model's
    template writes that reply: the position read is the one the model writes the label at."""
    scorer = scorers[family]
    image = random_views(1)[0].image
    prepared = scorer.prepare([View(image, "v")], STD)
    ((_, inputs),) = prepared.buckets
    ids = inputs["input_ids"][0].tolist()
    for label, label_id in zip(STD.labels, scorer.label_ids(STD), strict=True):
        replied = input_ids(scorer, template_text(scorer, label), image)
        assert replied[: len(ids) + 1] == [*ids, label_id], label


def test_tokenizers_write_whitespace_before_the_digit(scorers):
    """What makes the opening matter: the real tokenizers' space / "▁" before a digit."""
    janus, llava = scorers["janus"].tokenizer, scorers["llava"].tokenizer
    assert janus.tokenize("<|Assistant|>: 7")[-3:] == [":", "Ġ", "7"]
    assert llava.tokenize("ASSISTANT: 7")[-3:] == [":", "▁", "7"]


def test_template_whose_reply_does_not_follow_its_prompt_is_a_clear_error():
    def render(turns, generation):
        return "Q" + ("A:" if generation else "reply " + turns[-1]["content"][0]["text"])

    with pytest.raises(IQAError, match="'odd-model'.*cannot be found"):
        reply_opening(render, [], "7", "odd-model")


def test_answer_stem_is_written_after_the_opening(model_dirs):
    stem = "The quality of the image is "
    scorer = HFVLMScorer({"model": model_dirs["llava"], "device": "cpu", "answer_stem": stem})
    scorer.load(STD)
    assert scorer.prompt(STD).endswith("ASSISTANT: " + stem)
    assert scorer.tokenizer.convert_ids_to_tokens(scorer.label_ids(STD)) == list(STD.labels)


# ------------------------------------------------------------------ same level as generate


@pytest.mark.parametrize("family", ["janus", "llava", "qwen2_5_vl", "qwen3_vl_no_thinking"])
def test_argmax_level_is_the_level_greedy_generate_writes(model_dirs, family):
    """A model taught its format (it writes the template's opening, then a level that depends
    on the image) answers by ``generate`` from the template's own generation prompt; the scorer's
    most probable level is that answer for every view."""
    scorer = load(model_dirs, family)
    tok = scorer.tokenizer
    generation_prompt = template_text(scorer)
    opened = generation_prompt + FAMILIES[family][3]  # the template's own opening, as rendered
    prompt_ids = tok.encode(generation_prompt, add_special_tokens=False)
    chain = tok.encode(opened, add_special_tokens=False)[len(prompt_ids) - 1 :]  # last prompt token + opening
    views = random_views(8, seed=1)
    calibration = [scorer.process(opened, [scorer.fit(v.image)]) for v in views]
    tiny_vlm.teach_reply(scorer.model, chain, scorer.label_ids(STD), calibration)
    argmax = scorer.score(views, STD).probs.argmax(axis=1)
    inputs = [scorer.process(generation_prompt, [scorer.fit(view.image)]) for view in views]
    answers = tiny_vlm.greedy_replies(scorer.model, tok, inputs, len(chain))
    assert all(answer in STD.labels for answer in answers), answers
    assert len(set(answers)) > 1, "the taught level should depend on the image"
    assert [STD.labels[i] for i in argmax] == answers


# ------------------------------------------------------------------ batch invariance


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "qwen3_vl_no_thinking"])
def test_scores_do_not_depend_on_the_batch(scorers, family):
    """The same view gets the same level probabilities alone, in a batch, and in another batch
    order (CPU float32, to 1e-6): views are batched by prompt length, never padded."""
    scorer = scorers[family]
    views = random_views(6, seed=2)
    batched = scorer.score(views, STD).probs
    alone = np.concatenate([scorer.score([v], STD).probs for v in views])
    reordered = scorer.score(views[::-1], STD).probs[::-1]
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-6)
    np.testing.assert_allclose(batched, reordered, rtol=0, atol=1e-6)


def test_views_of_different_lengths_are_separate_unpadded_buckets(scorers):
    scorer = scorers["qwen2_vl"]
    views = [
        View(Image.new("RGB", size, (90, 60, 30)), str(i)) for i, size in enumerate([(40, 30), (28, 70), (40, 30)])
    ]
    prepared = scorer.prepare(views, STD)
    assert sorted(rows for rows, _ in prepared.buckets) == [[0, 2], [1]]
    assert all(bool(inputs["attention_mask"].all()) for _, inputs in prepared.buckets)


# ------------------------------------------------------------------ view shapes


@pytest.mark.parametrize("family", ["janus", "llava", "qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("size", [(384, 3), (384, 1), (1, 384), (1000, 1), (1, 1000), (3, 3)])
def test_thin_views_are_scored(scorers, family, size):
    """Slivers (mask crops can be 1 pixel high) are padded to 4 pixels and 1:100, not misread
    as channels-first (384x3) or rejected by the image processor (Qwen: over 1:200)."""
    out = scorers[family].score([View(Image.new("RGB", size, (200, 30, 30)), "thin")], STD)
    assert out.probs.shape == (1, 7) and np.isfinite(out.probs).all()


def test_thin_view_keeps_its_content(scorers):
    """A 384x3 view reaches Janus as a red band in the middle, not as a misread array."""
    scorer = scorers["janus"]
    inputs = scorer.prepare([View(Image.new("RGB", (384, 3), (255, 0, 0)), "thin")], NumberStandard({"levels": 5}))
    pixels = inputs.buckets[0][1]["pixel_values"][0]  # (3, 384, 384), normalised
    centre, top = pixels[:, 192, 192], pixels[:, 0, 192]
    assert centre[0] > centre[1] and centre[0] > centre[2]
    assert not torch.allclose(centre, top)


def test_big_views_are_capped_in_pixels(model_dirs):
    scorer = HFVLMScorer({"model": model_dirs["qwen2_vl"], "device": "cpu", "max_pixels": 10_000})
    scorer.load(STD)
    fitted = scorer.fit(Image.new("RGB", (4000, 3000)))
    assert fitted.size[0] * fitted.size[1] <= 10_000
    assert abs(fitted.size[0] / fitted.size[1] - 4 / 3) < 0.02
    assert HFVLMScorer.Params(model="m").max_pixels == 1024 * 1024


def test_processor_options_reach_the_processor(scorers, model_dirs):
    """Qwen's min/max_pixels as processor options: views of ~4 merged patches instead of the
    tiny model's default 9-16."""

    def image_tokens(scorer) -> list[int]:
        image_pad = scorer.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        prepared = scorer.prepare(random_views(4, seed=4), STD)
        return [int(n) for _, inputs in prepared.buckets for n in (inputs["input_ids"] == image_pad).sum(dim=1)]

    pixels = 4 * 28 * 28
    options = {"processor_options": {"size": {"shortest_edge": pixels, "longest_edge": pixels}}}
    scorer = HFVLMScorer({"model": model_dirs["qwen2_vl"], "device": "cpu", **options})
    scorer.load(STD)
    assert max(image_tokens(scorer)) <= 6 < 9 <= min(image_tokens(scorers["qwen2_vl"]))
