"""MLLM scorer plugins on tiny random models of the real architectures (offline, CPU)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from iqa_core.api import LevelProbs, View  # noqa: E402
from iqa_core.decode import decode  # noqa: E402
from iqa_core.errors import IQAError, ModelUnavailable  # noqa: E402
from iqa_plugins.scorers.hf_vlm import HFVLMScorer  # noqa: E402
from iqa_plugins.scorers.janus_pro import JanusProScorer  # noqa: E402
from iqa_plugins.scorers.mllm.answers import (  # noqa: E402
    UnparsedAnswer,
    interpolated_levels,
    level_probs,
    parse_answer,
)
from iqa_plugins.scorers.mllm.chat import conversation, level_token_ids  # noqa: E402
from iqa_plugins.scorers.mplug_owl3 import MPlugOwl3Scorer  # noqa: E402
from iqa_plugins.standards.levels import (  # noqa: E402
    CustomStandard,
    FreeStandard,
    NumberStandard,
    WordStandard,
)
from iqa_plugins.testing import tiny_vlm  # noqa: E402
from iqa_plugins.testing.tokenizers import QWEN2_5_VL_TEMPLATE, build_tokenizer  # noqa: E402

ARCHS = {"janus": JanusProScorer, "llava": HFVLMScorer, "qwen2_vl": HFVLMScorer}
STD = WordStandard({"levels": 7})


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny_vlm")
    return {name: str(getattr(tiny_vlm, f"build_{name}")(root / name)) for name in ARCHS}


@pytest.fixture(scope="module")
def scorers(model_dirs: dict[str, str]) -> dict[str, object]:
    loaded = {}
    for name, cls in ARCHS.items():
        scorer = cls({"model": model_dirs[name], "device": "cpu"})
        scorer.load(STD)
        loaded[name] = scorer
    return loaded


@pytest.fixture(scope="module")
def views() -> list[View]:
    """Three random views of different shapes (different Qwen2-VL token counts)."""
    rng = np.random.default_rng(0)
    shapes = [(30, 40), (70, 28), (50, 50)]
    return [
        View(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), key=f"v{i}")
        for i, (h, w) in enumerate(shapes)
    ]


# ------------------------------------------------------------------ scoring


@pytest.mark.parametrize("arch", ARCHS)
def test_probs_are_distributions_over_levels(scorers, views, arch):
    out = scorers[arch].score(views, STD)
    assert out.probs.shape == (3, 7)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-9)
    assert (out.probs > 0).all()
    assert out.values == STD.values
    assert out.top_is_level is not None
    assert out.top_is_level.dtype == bool and out.top_is_level.shape == (3,)


@pytest.mark.parametrize("arch", ARCHS)
def test_batch_equals_views_scored_alone(scorers, views, arch):
    batched = scorers[arch].score(views, STD)
    alone = [scorers[arch].score([v], STD) for v in views]
    np.testing.assert_allclose(batched.probs, np.concatenate([a.probs for a in alone]), rtol=0, atol=1e-6)
    assert batched.top_is_level.tolist() == [bool(a.top_is_level[0]) for a in alone]


@pytest.mark.parametrize("arch", ARCHS)
def test_deterministic(scorers, views, arch):
    np.testing.assert_array_equal(scorers[arch].score(views, STD).probs, scorers[arch].score(views, STD).probs)


def test_views_change_scores(scorers, views):
    out = scorers["qwen2_vl"].score(views, STD)
    assert not np.allclose(out.probs[0], out.probs[1])


def test_batch_is_not_padded(scorers, views):
    prepared = scorers["qwen2_vl"].prepare(views, STD)
    assert len(prepared.buckets) > 1, "views of different shapes should have prompts of different lengths"
    assert all(bool(inputs["attention_mask"].all()) for _, inputs in prepared.buckets)
    assert sorted(row for rows, _ in prepared.buckets for row in rows) == [0, 1, 2]


def test_matches_plain_transformers_forward(scorers, views):
    """Same numbers as the documented transformers path: templated with the image, full logits
    (Qwen2-VL's template writes the reply right after its generation prompt)."""
    scorer = scorers["qwen2_vl"]
    turns = conversation(STD.system, STD.user, "system")
    turns[-1]["content"][0]["image"] = views[0].image
    inputs = scorer.processor.apply_chat_template(
        turns, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.inference_mode():
        logits = scorer.model(**inputs).logits[0, -1]
    ids = [scorer.tokenizer.convert_tokens_to_ids(label) for label in STD.labels]
    expected = torch.softmax(logits[ids], dim=-1).numpy()
    np.testing.assert_allclose(scorer.score(views[:1], STD).probs[0], expected, atol=1e-5)


def test_other_standard_after_load(scorers, views):
    number5 = NumberStandard({"levels": 5})
    out = scorers["llava"].score(views, number5)
    assert out.probs.shape == (3, 5) and out.values == (1.0, 2.0, 3.0, 4.0, 5.0)


def test_level_probs_order_and_top_token():
    logits = torch.tensor([[0.0, 5.0, 1.0, 2.0], [9.0, 1.0, 1.0, 3.0]])
    out = level_probs(logits, [3, 2], (1.0, 2.0))
    expected = torch.softmax(torch.tensor([[2.0, 1.0], [3.0, 1.0]]), dim=-1).numpy()
    np.testing.assert_allclose(out.probs, expected, rtol=1e-6)
    assert out.top_is_level.tolist() == [False, False]
    assert level_probs(logits, [1, 0], (1.0, 2.0)).top_is_level.tolist() == [True, True]


# ------------------------------------------------------------------ prompts


def test_qwen2_vl_uses_system_turn(scorers):
    prompt = scorers["qwen2_vl"].prompt(STD)
    assert prompt.startswith(f"<|im_start|>system\n{STD.system}<|im_end|>")
    assert "<|vision_start|><|image_pad|><|vision_end|>" + STD.user in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_llava_template_without_system_gets_it_prepended(scorers):
    prompt = scorers["llava"].prompt(STD)
    assert prompt.startswith(f"USER: <image>\n{STD.system}\n\n{STD.user}")
    assert prompt.endswith("ASSISTANT: ")  # the reply's opening space (Vicuna format)


def test_explicit_system_role_on_template_without_one(model_dirs):
    scorer = HFVLMScorer({"model": model_dirs["llava"], "system_role": "system"})
    with pytest.raises(IQAError, match="does not render a system turn"):
        scorer.load(STD)


def test_janus_prompt_replaces_default_system_prompt(scorers, views):
    scorer = scorers["janus"]
    prompt = scorer.prompt(STD)
    assert prompt.startswith(f"{STD.system}\n\n<|User|>: <image_placeholder>\n{STD.user}")
    assert prompt.endswith("<|Assistant|>: ")  # replies are written "<|Assistant|>: 7"
    ids = scorer.prepare(views[:1], STD).buckets[0][1]["input_ids"][0]
    tokens = scorer.tokenizer.convert_ids_to_tokens(ids)
    # one BOS, then the standard's system text (not Janus' "helpful language and vision" prompt)
    assert tokens[0] == "<|begin_of_sentence|>" and tokens.count("<|begin_of_sentence|>") == 1
    assert scorer.tokenizer.decode(ids[1:]).startswith(STD.system)
    assert tokens.count("<image_placeholder>") == 576 and tokens[-3:] == ["<|Assistant|>", ":", "Ġ"]


# ------------------------------------------------------------------ user errors


@pytest.mark.parametrize("size", [(307, 135), (327, 383), (4000, 3000), (20, 900)])
def test_janus_accepts_views_of_any_aspect(scorers, size):
    """transformers' Janus processor alone gives 383x383 pixels for some sizes, which the
    vision tower rejects; the scorer fits views to 384 first."""
    view = View(Image.new("RGB", size, (120, 80, 40)), "odd")
    out = scorers["janus"].score([view], STD)
    assert out.probs.shape == (1, 7)


def test_multi_token_label_is_rejected(model_dirs):
    standard = CustomStandard({"levels": [{"value": 1, "label": "1"}, {"value": 2, "label": "10"}]})
    scorer = HFVLMScorer({"model": model_dirs["qwen2_vl"]})
    with pytest.raises(IQAError, match=r"'10' is 2 tokens \['1', '0'\]") as err:
        scorer.load(standard)
    assert model_dirs["qwen2_vl"] in str(err.value)


def test_offline_hub_id_is_model_unavailable(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    for scorer in (HFVLMScorer({"model": "Qwen/Qwen2-VL-2B-Instruct"}), JanusProScorer()):
        with pytest.raises(ModelUnavailable) as err:
            scorer.load(STD)
        assert repr(scorer.params.model) in str(err.value)
        assert "HF_HUB_OFFLINE" in str(err.value) and "--local-dir" in str(err.value)


@pytest.mark.parametrize("path", ["/nonexistent/models/tiny", "./no/such/model"])
def test_missing_local_path_is_model_unavailable(path):
    with pytest.raises(ModelUnavailable, match="no such directory"):
        HFVLMScorer({"model": path}).load(STD)


def test_label_check_on_qwen_style_tokenizer():
    tokenizer = build_tokenizer(
        "byte_level", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, {}, QWEN2_5_VL_TEMPLATE
    )
    prompt = "<|im_start|>assistant\n"
    ids = level_token_ids(tokenizer, STD.labels, "qwen-style", prompt)
    assert tokenizer.convert_ids_to_tokens(ids) == list(STD.labels)
    with pytest.raises(IQAError, match=r"'Very Bad' is \d tokens \[.*'ĠBad'\]"):
        level_token_ids(tokenizer, ("1", "Very Bad"), "qwen-style", prompt)


def sentencepiece_style_tokenizer():
    """Sentencepiece-like: a "▁" marks a word start and "▁7" is one token, so "7" alone encodes
    as "▁7" while "assistant:7" ends in the bare "7"."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyz:0123456789▁"))
    merges = [("▁", d) for d in "123456789"]
    vocab = {tok: i for i, tok in enumerate(["<unk>", *chars, *("".join(m) for m in merges)])}
    backend = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def test_label_is_the_answer_after_the_prompt_not_the_bare_label():
    tokenizer = sentencepiece_style_tokenizer()
    labels = tuple(str(d) for d in range(1, 8))
    assert tokenizer.tokenize("7") == ["▁7"]  # what a bare-label lookup would read
    ids = level_token_ids(tokenizer, labels, "sp-style", "assistant:")
    assert tokenizer.convert_ids_to_tokens(ids) == list(labels)
    # after a space the answer is the merged "▁7", and the prompt's own "▁" would be swallowed
    with pytest.raises(IQAError, match=r"prompt's last tokens .* merge with the level label '1'"):
        level_token_ids(tokenizer, labels, "sp-style", "assistant: ")


# ------------------------------------------------------------------ generated answers


@pytest.mark.parametrize(
    ("text", "value"),
    [("4.3", 4.3), (" 5", 5.0), ("Score: 6.25.", 6.25), ("7/7", 7.0), ("-1", -1.0)],
)
def test_parse_answer_takes_the_first_number(text, value):
    assert parse_answer(text) == value


@pytest.mark.parametrize("text", ["", "good", "four point three"])
def test_unparseable_answer_is_a_per_view_error_naming_the_text(text):
    with pytest.raises(UnparsedAnswer, match=repr(text)) as err:
        parse_answer(text)
    assert isinstance(err.value, ValueError) and not isinstance(err.value, IQAError)


def test_interpolation_is_lossless():
    values = tuple(float(v) for v in range(1, 8))
    probs = interpolated_levels(5.3, values)
    np.testing.assert_allclose(probs, [0, 0, 0, 0, 0.7, 0.3, 0], atol=1e-12)
    levels = LevelProbs(np.stack([probs, interpolated_levels(2.0, values)]), values)
    np.testing.assert_allclose(decode(levels, "expected"), [5.3, 2.0], atol=1e-12)
    np.testing.assert_array_equal(decode(levels, "argmax"), [5.0, 2.0])
    assert interpolated_levels(2.0, values).tolist() == [0, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(("score", "level"), [(9.5, 6), (7.0, 6), (-2.0, 0), (0.99, 0)])
def test_interpolation_clamps_to_the_level_range(score, level):
    probs = interpolated_levels(score, tuple(float(v) for v in range(1, 8)))
    assert probs[level] == 1.0 and probs.sum() == 1.0


def test_interpolation_with_uneven_levels():
    np.testing.assert_allclose(interpolated_levels(25.0, (0.0, 10.0, 50.0)), [0, 0.625, 0.375])


FREE = FreeStandard({"levels": 7})


@pytest.fixture(scope="module")
def generating(model_dirs: dict[str, str]) -> dict[str, object]:
    loaded = {}
    for name, cls in ARCHS.items():
        params = {"model": model_dirs[name], "device": "cpu", "answer": "generate"}
        scorer = cls({**params, "max_new_tokens": 3})
        scorer.load(FREE)
        loaded[name] = scorer
    return loaded


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_mode_runs_batched_greedy_generation(generating, views, arch):
    """Random weights write arbitrary tokens: a valid row per view, or the documented error."""
    scorer = generating[arch]
    try:
        out = scorer.score(views, FREE)
    except UnparsedAnswer as exc:
        assert "holds no number" in str(exc)
        return
    assert out.probs.shape == (3, 7) and out.top_is_level.shape == (3,)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)
    assert ((out.probs > 0).sum(axis=1) <= 2).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_mode_matches_one_view_at_a_time(generating, views, arch):
    scorer = generating[arch]
    assert scorer.generated_ids(scorer.prepare(views, FREE)) == [
        scorer.generated_ids(scorer.prepare([v], FREE))[0] for v in views
    ]


def test_generate_mode_parses_decoded_answers(generating, views, monkeypatch):
    """Stands in for the model's answers: token ids the tokenizer decodes to these texts."""
    scorer = generating["qwen2_vl"]
    ids = {text: scorer.tokenizer.encode(text, add_special_tokens=False) for text in ("4.3", "score 9", "7", "good")}
    batch = [ids["4.3"], ids["score 9"], ids["7"]]
    monkeypatch.setattr(scorer, "generated_ids", lambda prepared: batch[: prepared.n])
    out = scorer.score(views, FREE)
    np.testing.assert_allclose(decode(out, "expected"), [4.3, 7.0, 7.0], atol=1e-12)
    assert out.top_is_level.tolist() == [True, False, True]
    batch[1] = ids["good"]
    with pytest.raises(UnparsedAnswer, match="'good'"):
        scorer.score(views, FREE)


def test_generate_mode_skips_the_single_token_check(model_dirs):
    levels = [{"value": 1, "label": "1"}, {"value": 10, "label": "10"}]
    standard = CustomStandard({"levels": levels})
    scorer = HFVLMScorer({"model": model_dirs["qwen2_vl"], "answer": "generate"})
    scorer.load(standard)
    assert scorer.tokenizer.convert_ids_to_tokens(scorer.label_ids(standard)) == ["1"]


# ------------------------------------------------------------------ packaging


def test_entry_points_name_these_classes():
    scorers = {ep.name: ep for ep in entry_points(group="iqa.scorers")}
    if not scorers:
        pytest.skip("the iqa distribution is not installed here (source tree on PYTHONPATH)")
    assert scorers["hf_vlm"].load() is HFVLMScorer
    assert scorers["janus_pro"].load() is JanusProScorer
    assert scorers["mplug_owl3"].load() is MPlugOwl3Scorer


def test_plugin_modules_do_not_import_torch():
    code = (
        "import sys, iqa_plugins.scorers.hf_vlm, iqa_plugins.scorers.janus_pro, "
        "iqa_plugins.scorers.mplug_owl3, iqa_plugins.testing.tiny_vlm; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
