"""The native ``mplug_owl3`` scorer as users run it: answer position, token counts and buckets,
generation, loading errors, the 7B checkpoint's names and shapes, and the recipe params.

The model is the faithfulness fixture's tiny 240728 checkpoint (original parameter names, a
Qwen2-style byte-level tokenizer with isolated digits and mPLUG-Owl3's turn markers), loaded
by path as a downloaded checkpoint is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from iqa_core.api import View  # noqa: E402
from iqa_core.errors import IQAError, ModelUnavailable, RecipeError  # noqa: E402
from iqa_core.recipe import resolve  # noqa: E402
from iqa_plugins.scorers.mllm.chat import reply_opening  # noqa: E402
from iqa_plugins.scorers.mplug_owl3 import MPlugOwl3Scorer  # noqa: E402
from iqa_plugins.scorers.mplug_owl3.checkpoint import build, hub_name, native_name, unread  # noqa: E402
from iqa_plugins.scorers.mplug_owl3.config import read_config  # noqa: E402
from iqa_plugins.scorers.mplug_owl3.processing import ANCHORS, cut_grid  # noqa: E402
from iqa_plugins.standards.levels import WordStandard  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "data" / "mplug_owl3_240728"
STD = WordStandard({"levels": 7})
SIZES = [
    (40, 40),
    (300, 200),
    (200, 520),
    (900, 400),
    (160, 196),
    (700, 330),
    (159, 75),
    (100, 150),
    (400, 100),
    (100, 400),
]


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    w, h = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def scorer() -> MPlugOwl3Scorer:
    s = MPlugOwl3Scorer({"model": str(FIXTURE), "device": "cpu"})
    s.load(STD)
    return s


def test_the_answer_is_read_right_after_the_open_assistant_turn(scorer):
    """In the real format (Qwen2 byte-level, isolated digits, <|im_start|>/<|im_end|>): the
    reply's first character follows "<|im_start|>assistant\\n", and each level is one digit token."""
    prompt = scorer.prompt(STD)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    turns = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": STD.user}]}]
    assert reply_opening(scorer.render, turns, "7", scorer.params.model) == ""
    tok = scorer.tokenizer
    assert scorer.label_ids(STD) == tok.convert_tokens_to_ids(list("1234567"))
    stemmed = MPlugOwl3Scorer({"model": str(FIXTURE), "device": "cpu", "answer_stem": "Score: "})
    stemmed.load(STD)
    assert stemmed.prompt(STD).endswith("assistant\nScore: ")


@pytest.mark.parametrize("size", SIZES)
def test_view_tokens_is_the_processed_length_for_every_grid(scorer, size):
    image = scorer.fit(noise(size))
    ids = scorer.process(scorer.prompt(STD), [image])["input_ids"]
    assert scorer.view_tokens(size) == ids.shape[1]


def test_every_anchor_is_reached_and_counted(scorer):
    """The test sizes above cut into every one of the seven anchors at the tiny crop size."""
    grids = {cut_grid(*size, scorer.processor.image_size) for size in SIZES}
    assert grids == set(ANCHORS)


def test_views_of_one_grid_share_an_unpadded_pass_and_score_as_alone(scorer):
    views = [View(noise(size, seed=i), key=str(i)) for i, size in enumerate([(300, 200), (310, 205), (40, 40)])]
    prepared = scorer.prepare(views, STD)
    assert sorted(rows for rows, _ in prepared.buckets) == [[0, 1], [2]]
    assert all(bool(inputs["attention_mask"].all()) for _, inputs in prepared.buckets)
    together = scorer.score(views, STD).probs
    alone = np.concatenate([scorer.score([v], STD).probs for v in views])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_generate_answers_greedily_from_the_same_position(scorer):
    views = [View(noise(size, seed=i), key=str(i)) for i, size in enumerate([(300, 200), (40, 40)])]
    prepared = scorer.prepare(views, STD)
    with torch.inference_mode():
        logits = scorer.last_logits(prepared)
        answers = scorer.generated_ids(prepared)
    assert [ids[0] for ids in answers] == logits.argmax(-1).tolist()
    assert all(0 < len(ids) <= scorer.params.max_new_tokens for ids in answers)


def copy_fixture(tmp_path: Path, edit) -> Path:
    folder = tmp_path / "owl3"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("cases.*", "images"))
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors")
    return folder


V_KV = "language_model.model.layers.0.self_attn.v_kv_proj.weight"


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s.pop(V_KV), f"it lacks '{V_KV}'"),
        (
            lambda s: s.__setitem__(V_KV, s[V_KV][:32]),
            f"its tensor '{V_KV}' has shape [32, 64], config.json implies [64, 64]",
        ),
        (
            lambda s: s.__setitem__("language_model.model.layers.1.self_attn.v_kv_proj.weight", s[V_KV].clone()),
            "layers.1.self_attn.v_kv_proj.weight' has no place",
        ),
    ],
    ids=["missing", "shape", "unexpected"],
)
def test_a_checkpoint_that_does_not_match_fails_in_one_line_naming_it(tmp_path, edit, named):
    folder = copy_fixture(tmp_path, edit)
    with pytest.raises(ModelUnavailable) as err:
        MPlugOwl3Scorer({"model": str(folder), "device": "cpu"}).load(STD)
    message = str(err.value)
    assert named in message and str(folder) in message and "\n" not in message


def test_the_unread_vision_tensors_may_be_absent(tmp_path):
    """post_layernorm, the pooling head and the last SigLIP layer are never read."""
    folder = copy_fixture(
        tmp_path,
        lambda s: [
            s.pop(k)
            for k in list(s)
            if k.startswith(("vision_model.head.", "vision_model.post_layernorm.", "vision_model.encoder.layers.2."))
        ],
    )
    MPlugOwl3Scorer({"model": str(folder), "device": "cpu"}).load(STD)


def test_a_config_of_another_model_is_refused_naming_the_file(tmp_path):
    folder = copy_fixture(tmp_path, lambda s: None)
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**raw, "model_type": "qwen2"}))
    with pytest.raises(IQAError, match=r"config\.json: model_type is 'qwen2', not 'mplugowl3'"):
        MPlugOwl3Scorer({"model": str(folder), "device": "cpu"}).load(STD)


def test_offline_hub_id_is_one_line_with_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailable) as err:
        MPlugOwl3Scorer({"device": "cpu"}).load(STD)
    message = str(err.value)
    assert "'mPLUG/mPLUG-Owl3-7B-240728'" in message and "--local-dir DIR" in message and "\n" not in message


def test_trust_remote_code_is_refused_with_the_reason():
    with pytest.raises(RecipeError, match=r"scorers\[0\]\.params: trust_remote_code is not a parameter any more"):
        resolve({"scorers": [{"name": "mplug_owl3", "params": {"trust_remote_code": True}}]})


# ------------------------------------------------------------------ the real checkpoint's names and shapes

CONFIG_7B = {  # config.json of mPLUG/mPLUG-Owl3-7B-240728 (the remote code's copy at AdaCheng/EgoThink@fbafe8f)
    "model_type": "mplugowl3",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "vocab_size": 151851,
    "hyper_layers": [1, 9, 17, 25],
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "vision_config": {
        "hidden_size": 1152,
        "image_size": 384,
        "intermediate_size": 4304,
        "model_type": "siglip_vision_model",
        "num_attention_heads": 16,
        "num_hidden_layers": 27,
        "patch_size": 14,
    },
}


def checkpoint_7b() -> dict[str, tuple[int, ...]]:
    """The tensors the 240728 checkpoint holds, written out from its architecture (Qwen2-7B
    text model, SigLIP so400m-384 vision, hyper layers 1/9/17/25), by their original names."""
    h, inter, kv, hd, vocab = 3584, 18944, 4 * 128, 128, 151851
    out = {
        "language_model.model.embed_tokens.weight": (vocab, h),
        "language_model.model.norm.weight": (h,),
        "language_model.lm_head.weight": (vocab, h),
        "vision2text_model.weight": (h, 1152),
        "vision2text_model.bias": (h,),
        "vision_model.embeddings.patch_embedding.weight": (1152, 3, 14, 14),
        "vision_model.embeddings.patch_embedding.bias": (1152,),
        "vision_model.embeddings.position_embedding.weight": (729, 1152),
        "vision_model.post_layernorm.weight": (1152,),
        "vision_model.post_layernorm.bias": (1152,),
    }
    for i in range(28):
        p = f"language_model.model.layers.{i}."
        out |= {p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}
        out |= {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.q_proj.bias": (h,)}
        for name in "kv":
            out |= {p + f"self_attn.{name}_proj.weight": (kv, h), p + f"self_attn.{name}_proj.bias": (kv,)}
        out |= {p + "self_attn.o_proj.weight": (h, h)}
        out |= {p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h)}
        out |= {p + "mlp.down_proj.weight": (h, inter)}
        if i + 1 in (1, 9, 17, 25):
            out |= {p + "self_attn.v_kv_proj.weight": (2 * kv, h), p + "self_attn.v_kv_proj.bias": (2 * kv,)}
            out |= {p + "self_attn.gate_proj.0.weight": (hd, hd), p + "self_attn.gate_proj.0.bias": (hd,)}
    for i in range(27):
        p = f"vision_model.encoder.layers.{i}."
        for norm in ("layer_norm1", "layer_norm2"):
            out |= {p + f"{norm}.weight": (1152,), p + f"{norm}.bias": (1152,)}
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out |= {p + f"self_attn.{proj}.weight": (1152, 1152), p + f"self_attn.{proj}.bias": (1152,)}
        out |= {p + "mlp.fc1.weight": (4304, 1152), p + "mlp.fc1.bias": (4304,)}
        out |= {p + "mlp.fc2.weight": (1152, 4304), p + "mlp.fc2.bias": (1152,)}
    return out


def test_the_7b_checkpoint_fills_every_native_parameter_by_name_and_shape():
    """Built on the meta device from the 7B config: every tensor the checkpoint holds maps onto a
    native parameter of its shape or is one the scoring path never reads, and every native
    parameter gets one, so a real download fails nowhere for a name."""
    config = read_config(CONFIG_7B, "7B config.json")
    model = build(config)
    native = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert all(p.is_meta for p in model.parameters())
    checkpoint = checkpoint_7b()
    loaded = {native_name(name): shape for name, shape in checkpoint.items() if not unread(name, config)}
    assert loaded == native
    assert {hub_name(name) for name in native} <= set(checkpoint)
    skipped = sorted(name for name in checkpoint if unread(name, config))
    assert all(n.startswith(("vision_model.post_layernorm.", "vision_model.encoder.layers.26.")) for n in skipped)
    assert sum(np.prod(s) for s in native.values()) == sum(np.prod(s) for s in loaded.values())


def test_validate_says_before_any_download_that_an_older_transformers_cannot_run_it(monkeypatch):
    import importlib.metadata

    from iqa_core.extras import MissingPackage

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda d: "4.57.6" if d == "transformers" else real(d))
    with pytest.raises(MissingPackage) as err:
        resolve("llm_iqa")
    assert str(err.value).endswith(
        "llm_iqa.yaml: scorers[0].name: mplug_owl3 needs transformers>=5.25: pip install 'transformers>=5.25'"
    )
    monkeypatch.setattr(importlib.metadata, "version", lambda d: "5.25.0" if d == "transformers" else real(d))
    resolve("llm_iqa")
