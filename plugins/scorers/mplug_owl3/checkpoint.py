"""The Hub checkpoint's parameter names on the native model, and loading its safetensors.

``mPLUG/mPLUG-Owl3-7B-240728`` stores the remote code's names. :data:`RENAMES` maps them onto
:class:`~.modeling.MPlugOwl3`'s, in order, each applied where it matches:

====================================================  =====================================
checkpoint (remote code)                              native
====================================================  =====================================
``language_model.model.layers.N.self_attn.gate_proj.0.``  ``text.layers.N.self_attn.gate.``
``language_model.model.``                             ``text.`` (a transformers ``Qwen2Model``)
``language_model.lm_head.``                           ``lm_head.``
``vision2text_model.``                                ``projector.``
``vision_model.embeddings.`` / ``vision_model.encoder.``  ``vision.embeddings.`` / ``vision.encoder.``
====================================================  =====================================

Not loaded, because the scoring path never reads them (it takes the vision tower's
second-to-last hidden state): ``vision_model.post_layernorm.*``, ``vision_model.head.*`` and
the tower's last encoder layer. Any other name that does not land on a native parameter, a
shape that differs, or a native parameter the checkpoint lacks fails the load in one line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from iqa_core.errors import ModelUnavailable

if TYPE_CHECKING:
    import torch

    from iqa_plugins.scorers.mplug_owl3.config import Owl3Config
    from iqa_plugins.scorers.mplug_owl3.modeling import MPlugOwl3

RENAMES = [
    (r"^language_model\.model\.(layers\.\d+)\.self_attn\.gate_proj\.0\.", r"text.\1.self_attn.gate."),
    (r"^language_model\.model\.", "text."),
    (r"^language_model\.lm_head\.", "lm_head."),
    (r"^vision2text_model\.", "projector."),
    (r"^vision_model\.(embeddings|encoder)\.", r"vision.\1."),
]
UNREAD = (r"^vision_model\.post_layernorm\.", r"^vision_model\.head\.")


def native_name(name: str) -> str:
    """The native parameter a checkpoint tensor loads into."""
    for pattern, replacement in RENAMES:
        name = re.sub(pattern, replacement, name)
    return name


def unread(name: str, config: Owl3Config) -> bool:
    """A checkpoint tensor the scoring path never reads (see the module docstring)."""
    last = f"vision_model.encoder.layers.{config.vision.num_hidden_layers - 1}."
    return name.startswith(last) or any(re.match(p, name) for p in UNREAD)


def build(config: Owl3Config) -> MPlugOwl3:
    """The model with its parameters on the ``meta`` device (buffers real), ready for
    :func:`load_weights`: a 7B model is not initialised only to be overwritten."""
    from accelerate import init_empty_weights

    from iqa_plugins.scorers.mplug_owl3.modeling import MPlugOwl3

    with init_empty_weights(include_buffers=False):
        return MPlugOwl3(config)


def shards(folder: Path) -> list[Path]:
    """The checkpoint's safetensors files: the index's shards, or the one ``model.safetensors``."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / name for name in names]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    raise ModelUnavailable(str(folder), "it holds no model.safetensors or model.safetensors.index.json")


def load_weights(model: MPlugOwl3, folder: Path, device: torch.device, dtype: torch.dtype) -> None:
    """Every native parameter from the checkpoint in ``folder``, cast to ``dtype`` on ``device``."""
    from safetensors import safe_open

    expected = {name: tuple(p.shape) for name, p in model.named_parameters()}
    state: dict[str, torch.Tensor] = {}
    for shard in shards(folder):
        with safe_open(str(shard), framework="pt", device=str(device)) as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                target = native_name(name)
                if target not in expected:
                    if unread(name, model.config):
                        continue
                    raise mismatch(folder, f"its tensor {name!r} has no place in the 240728 architecture")
                tensor = f.get_tensor(name)
                if tuple(tensor.shape) != expected[target]:
                    raise mismatch(
                        folder,
                        f"its tensor {name!r} has shape {list(tensor.shape)}, config.json implies "
                        f"{list(expected[target])}",
                    )
                state[target] = tensor.to(dtype)
    if missing := [name for name in expected if name not in state]:
        raise mismatch(folder, f"it lacks {hub_name(missing[0])!r} ({len(missing)} tensor(s) missing)")
    model.load_state_dict(state, strict=False, assign=True)


def hub_name(native: str) -> str:
    """The checkpoint name of a native parameter (for messages)."""
    for pattern, replacement in (
        (r"^text\.(layers\.\d+)\.self_attn\.gate\.", r"language_model.model.\1.self_attn.gate_proj.0."),
        (r"^text\.", "language_model.model."),
        (r"^lm_head\.", "language_model.lm_head."),
        (r"^projector\.", "vision2text_model."),
        (r"^vision\.", "vision_model."),
    ):
        native = re.sub(pattern, replacement, native)
    return native


def mismatch(folder: Path, what: str) -> ModelUnavailable:
    return ModelUnavailable(f"not an mPLUG-Owl3-7B-240728 checkpoint: {folder}: {what}")
