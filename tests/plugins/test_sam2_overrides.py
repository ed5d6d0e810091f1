"""SAM2 ``overrides`` may only set values of keys the model config has: nothing that runs code.

Hydra instantiates every ``_target_`` it composes; before this check a recipe's
``++model.pwn={_target_:builtins.open,...}`` created a file and ``validate`` said ok.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

pytest.importorskip("sam2")

from iqa_core.errors import RecipeError  # noqa: E402
from iqa_core.recipe import resolve  # noqa: E402
from iqa_plugins.segmenters.sam2 import SAM2Segmenter  # noqa: E402
from iqa_plugins.testing.tiny_sam2 import TINY_CONFIG  # noqa: E402


def params(*overrides: str) -> dict:
    return {"config": TINY_CONFIG, "checkpoint": "absent.pt", "overrides": list(overrides)}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # a _target_ in the value, on a key the config has
        ("model.image_encoder.scalp={_target_:builtins.open,file:pwned,mode:w}", "sets Hydra's _target_"),
        ("model.image_encoder.trunk.stages=[1,{_target_:os.system,_args_:[id]}]", "sets Hydra's _target_"),
        ("++model.image_encoder.neck={_partial_:true}", "sets Hydra's _partial_"),
        # the key itself is Hydra's
        ("model._target_=shutil.copyfile", "sets Hydra's _target_ (instantiates code)"),
        ("++model.image_encoder.trunk._args_=[x]", "sets Hydra's _args_"),
        # interpolations that resolve to code: a resolver, a node with a _target_, an unknown key
        ("model.image_size='${oc.decode:\"{_target_: builtins.open, file: pwned, mode: w}\"}'", "interpolation"),
        ("model.memory_attention=${model.image_encoder}", "interpolation may only name a scalar"),
        ("model.image_size=${oc.env:HOME}", "interpolation"),
        ("model.image_size=x${nowhere.at.all}", "interpolation"),
        ("model.image_size=${${model.num_maskmem}}", "Error parsing override"),
        # keys outside the model config, or changes that are not values
        ("++model.pwn={file:pwned}", "'model.pwn' is not a key of the model config sam2.1_hiera_t.yaml"),
        ("+model.extra=1", "only 'key=value' or '++key=value'"),
        ("~model.image_encoder", "only 'key=value' or '++key=value'"),
        ("model.image_size=128,256", "a sweep is not a value"),
        ("model.image_size", "Error parsing override"),
    ],
)
def test_overrides_that_could_run_code_are_refused(override: str, message: str) -> None:
    with pytest.raises(ValidationError, match=r"overrides\[1\] .*" + re.escape(message)):
        SAM2Segmenter(params("++model.image_size=128", override))


def test_values_of_known_keys_are_allowed() -> None:
    seg = SAM2Segmenter(params("++model.image_size=128", "model.num_maskmem=${model.image_size}"))
    assert seg.params.overrides[1] == "model.num_maskmem=${model.image_size}"


def test_a_local_yaml_config_is_the_key_set(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  image_size: 64\n")
    SAM2Segmenter({"config": str(config), "checkpoint": "x.pt", "overrides": ["model.image_size=32"]})
    with pytest.raises(ValidationError, match="'model.num_maskmem' is not a key of the model config mine.yaml"):
        SAM2Segmenter({"config": str(config), "checkpoint": "x.pt", "overrides": ["model.num_maskmem=1"]})


def test_validate_refuses_them_with_the_field_path(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    override = f"++model.pwn={{_target_:builtins.open,file:{pwned},mode:w}}"
    data = {"segmenter": {"name": "sam2", "params": params(override)}, "scorers": [{"name": "clip_iqa"}]}
    with pytest.raises(RecipeError, match=r"^<recipe>: segmenter\.params: overrides\[0\] "):
        resolve(data)
    assert not pwned.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model:\n  _target_: builtins.open\n  file: pwned\n",
            "model._target_: 'builtins.open' is not a sam2.modeling class",
        ),
        ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  x: {_partial_: true}\n", "model.x._partial_:"),
        ("model:\n  layers: [{_target_: os.system, command: id}]\n", "model.layers.0._target_: 'os.system'"),
        ("defaults: [evil]\nmodel: {}\n", "a 'defaults' list composes other files"),
        ("model:\n  image_size: ${oc.env:HOME}\n", "model.image_size: an interpolation may only name a scalar"),
        ("[not, a, mapping]\n", "not a YAML mapping"),
    ],
)
def test_a_local_config_may_only_instantiate_sam2(tmp_path: Path, text: str, message: str) -> None:
    """Naming a .yaml in a recipe ran whatever ``_target_`` it held when the model loaded."""
    config = tmp_path / "evil.yaml"
    config.write_text(text)
    with pytest.raises(ValidationError, match=re.escape(f"config {config}: ") + ".*" + re.escape(message)):
        SAM2Segmenter({"config": str(config), "checkpoint": "x.pt"})
