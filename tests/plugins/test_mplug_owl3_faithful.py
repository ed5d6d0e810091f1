"""The native mPLUG-Owl3 against what the ORIGINAL 240728 remote code computed.

``tests/data/mplug_owl3_240728`` was recorded from the original code under transformers 4.56.2
(``tools/mplug_owl3_reference/make_fixture.py``; its README says how, and lists the facts). Here
the native scorer loads that folder as a user loads a checkpoint (its ``model`` parameter) and
must give the same processor outputs exactly and the same logits to 1e-4 in float32. The
README's sensitivity table says which mistakes that tolerance catches (the smallest, 0.13); the
last tests make three of them on purpose and check they are caught.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from iqa_core.api import View  # noqa: E402
from iqa_plugins.scorers.mplug_owl3 import MPlugOwl3Scorer, modeling  # noqa: E402
from iqa_plugins.scorers.mplug_owl3.processing import Owl3Processor, chat_text  # noqa: E402
from iqa_plugins.standards.levels import WordStandard  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "data" / "mplug_owl3_240728"
RECORD = json.loads((FIXTURE / "cases.json").read_text())
CASES, REAL = RECORD["cases"], RECORD["real_processor_cases"]
TOL = 1e-4
STD = WordStandard({"levels": 7})  # the recording's standard


@pytest.fixture(scope="module")
def tensors() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "cases.safetensors")


@pytest.fixture(scope="module")
def scorer() -> MPlugOwl3Scorer:
    s = MPlugOwl3Scorer({"model": str(FIXTURE), "device": "cpu", "dtype": "float32", "pad_slack": 1000})
    s.load(STD)
    return s


def image(case: dict) -> Image.Image:
    return Image.open(FIXTURE / case["image"]).convert("RGB")


def processed(processor: Owl3Processor, case: dict) -> dict:
    text = chat_text(case["messages"][:-1], True)  # the recorded conversation, its answer turn open
    return processor([text], [[image(case)]])


@pytest.mark.parametrize("name", sorted(CASES))
def test_processor_writes_what_the_original_wrote(scorer, tensors, name):
    case = CASES[name]
    out = processed(scorer.processor, case)
    text = chat_text(case["messages"][:-1], True)
    assert scorer.processor.expand(text, image(case)) == case["prompt_text"]
    for key in ("input_ids", "media_offset", "pixel_values"):
        assert torch.equal(out[key], tensors[f"{name}.{key}"]), key
    assert out["pixel_values"].dtype == torch.float32


@pytest.mark.parametrize("name", sorted(REAL))
def test_processor_at_384_pixels_cuts_and_normalises_as_the_original(scorer, tensors, name):
    case = REAL[name]
    out = processed(Owl3Processor(scorer.tokenizer, 384), case)
    assert list(out["pixel_values"].shape) == case["pixel_values_shape"]
    for key in ("input_ids", "media_offset"):
        assert torch.equal(out[key], tensors[f"real.{name}.{key}"]), key
    u8 = torch.round((out["pixel_values"] * 0.5 + 0.5) * 255).to(torch.uint8)
    assert hashlib.sha256(u8.numpy().tobytes()).hexdigest() == case["pixels_u8_sha256"]


def test_the_scorers_prompt_is_the_recorded_conversation(scorer):
    case = CASES["small_40x40"]
    assert scorer.processor.expand(scorer.prompt(STD), image(case)) == case["prompt_text"]
    no_system = CASES["small_40x40_nosystem"]  # the original's empty system turn
    assert chat_text(no_system["messages"][:-1], True).startswith("<|im_start|>system\n<|im_end|>\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_image_embeddings_and_logits_agree_with_the_original(scorer, tensors, name):
    with torch.inference_mode():
        embeds = scorer.model.forward_image(tensors[f"{name}.pixel_values"])
        logits = scorer.model(
            tensors[f"{name}.input_ids"], tensors[f"{name}.media_offset"], tensors[f"{name}.pixel_values"]
        ).logits[:, -1]
    assert (embeds - tensors[f"{name}.image_embeds"]).abs().max() < TOL
    assert (logits - tensors[f"{name}.logits"]).abs().max() < TOL


def test_every_layers_hidden_state_agrees(scorer, tensors):
    name = "wide_300x200"
    recorded = tensors[f"{name}.hidden_states"]
    seen: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(o)) for layer in scorer.model.text.layers]
    try:
        with torch.inference_mode():
            last = scorer.model.hidden_states(
                tensors[f"{name}.input_ids"], tensors[f"{name}.media_offset"], tensors[f"{name}.pixel_values"]
            )
    finally:
        for hook in hooks:
            hook.remove()
    for i, hidden in enumerate(seen[:-1]):  # [1..3]: layers 0..2; [4]: the last layer after the norm
        assert (hidden[0] - recorded[i + 1]).abs().max() < TOL, f"layer {i}"
    assert (last[0] - recorded[-1]).abs().max() < TOL


def test_the_padded_batch_agrees_with_the_original(scorer, tensors):
    with torch.inference_mode():
        logits = scorer.model(
            tensors["batch.input_ids"],
            tensors["batch.media_offset"],
            image_embeds=tensors["batch.image_embeds"],
            attention_mask=tensors["batch.attention_mask"],
            logits_to_keep=1,
        ).logits[:, -1]
    assert (logits - tensors["batch.logits"]).abs().max() < TOL


def test_the_scorer_batches_views_of_every_grid_and_still_agrees(scorer, tensors):
    """Seven views, five grids, one left-padded pass (pad_slack): each row as the original alone."""
    names = [n for n in sorted(CASES) if n != "small_40x40_nosystem"]
    prepared = scorer.prepare([View(image(CASES[n]), key=n) for n in names], STD)
    assert len(prepared.buckets) == 1
    with torch.inference_mode():
        logits = scorer.last_logits(prepared)
    for row, name in enumerate(names):
        assert (logits[row] - tensors[f"{name}.logits"][0]).abs().max() < TOL, name


@pytest.mark.parametrize(
    "mistake",
    ["no visual RoPE", "K/V read as (KV H D)", "last vision layer used"],
)
def test_the_tolerance_catches_a_known_mistake(scorer, tensors, monkeypatch, mistake):
    """The README's sensitivity table, redone on the native code: each mistake moves the logits
    by far more than the tolerance, so the agreement above is evidence."""
    if mistake == "no visual RoPE":
        monkeypatch.setattr(modeling, "mi_rope", lambda keys, positions, inv_freq: keys)
    elif mistake == "K/V read as (KV H D)":
        real = modeling.mi_rope
        monkeypatch.setattr(modeling, "mi_rope", lambda keys, p, f: real(keys.flip(1), p, f))
    else:
        full = modeling.SiglipEncoder(scorer.model.config.vision)
        state = dict(scorer.model.vision["encoder"].state_dict())
        last = len(full.layers) - 1
        original = load_file(FIXTURE / "model.safetensors")
        prefix = f"vision_model.encoder.layers.{last}."
        state.update({f"layers.{last}.{k[len(prefix) :]}": v for k, v in original.items() if k.startswith(prefix)})
        full.load_state_dict(state)
        kept, scorer.model.vision["encoder"] = scorer.model.vision["encoder"], full.eval()
    name = "wide_300x200"
    try:
        with torch.inference_mode():
            logits = scorer.model(
                tensors[f"{name}.input_ids"], tensors[f"{name}.media_offset"], tensors[f"{name}.pixel_values"]
            ).logits[:, -1]
    finally:
        if mistake == "last vision layer used":
            scorer.model.vision["encoder"] = kept
    assert (logits - tensors[f"{name}.logits"]).abs().max() > 100 * TOL
