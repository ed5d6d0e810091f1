"""SAM2 automatic mask generation (LLM-IQA supplementary §B, Table 2).

Weights come from the Hugging Face Hub by id (``facebook/sam2.1-hiera-large`` …,
resolved with the ``sam2`` package's own id -> (config, checkpoint) table) or from a
local ``config`` + ``checkpoint``. ``import sam2`` initialises Hydra's global state,
so every sam2/torch import happens inside :meth:`SAM2Segmenter.load`.

Notes on Table 2 as the installed ``sam2`` (1.1.0) interprets it:

* ``min_mask_region_area`` fills holes and removes islands of at most that many
  pixels in SAM2's *low-resolution* mask logits (``image_size / 4`` per side, 256 for
  every released model), before they are upsampled. It is therefore independent of
  the input and of ``max_side``; no opencv is involved. The package does this with a
  CUDA extension (``sam2._C``); where that is not built (``SAM2_BUILD_CUDA=0``,
  CPU-only installs) the package would warn and skip it, so this plugin runs the same
  8-connected component filter itself (``_components.py``): for all candidates of a batch
  in one pass, with tensor operations on an accelerator (no copy to the host), with
  scipy on the CPU.
* ``crop_n_points_downscale_factor=1.2`` is accepted as printed: the package only
  uses it as ``points_per_side / factor**layer``, and with ``crop_n_layers=0`` it has
  no effect.
* ``output_mode='coco_rle'`` is an encoding choice: :meth:`segment` returns boolean
  arrays and the core stores regions as COCO RLE.

Cost (``fast_postprocess``, on by default): the package upsamples the logits of *every*
candidate (points x 3) to the working resolution, then filters them, RLE-encodes every
survivor on the CPU and decodes the kept ones again; when most candidates survive that is
seconds per image. This plugin (``_fast_amg.py``) runs the same steps in an order that is
cheaper and gives the same masks, bit for bit: the predicted-IoU filter first (it needs no
mask), the small-region filter on the survivors at the 256x256 logit size (where the package runs it too; on the
model's device, all survivors of a batch at once, see ``_components.py``), then per
chunk of survivors the same bilinear upsampling, stability score, threshold, boxes and box NMS
as the package, on the model's device and without RLE; only the kept masks are upsampled a
second time and copied to the host. So the cost is bounded by ``max_side`` (not by the input
size) and mostly by the number of candidates that pass the IoU filter. It applies with
``crop_n_layers=0`` and ``use_m2m=False`` (the paper's settings); other settings use the
package's own path. ``tests/plugins/test_sam2.py`` checks both paths give identical masks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from iqa_core.api import Params, Segmenter
from iqa_core.errors import ModelUnavailable
from iqa_core.weights import Weights
from iqa_plugins.segmenters._fast_amg import fit_predictor, generate_fast

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "facebook/sam2.1-hiera-large"

LOCAL_HINT = (
    "Offline? Download the checkpoint and its config where you have internet, then set "
    "the recipe's `checkpoint:` to the .pt file and `config:` to the package config name "
    "(e.g. configs/sam2.1/sam2.1_hiera_l.yaml) or a local .yaml path."
)

# Hydra instantiates every ``_target_`` in a composed config (``_partial_``, ``_args_`` ... steer it),
# so an override could name any callable; an interpolation can copy such a node, and a resolver such
# as ``oc.decode`` can parse a string into one. Overrides may therefore only set plain values of keys
# the model config already has, and interpolate only its scalar values.
_HYDRA_KEY = re.compile(r"^_.*_$")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def check_overrides(overrides: list[str], config_file: Path) -> None:
    """Raise ValueError naming the first override that is more than a value for a known key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    nodes = dict(_paths(_read_config(config_file)))
    parser = OverridesParser.create()
    for i, text in enumerate(overrides):
        where = f"overrides[{i}] {text!r}"
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as e:
            raise ValueError(f"{where}: {str(e).splitlines()[0]}") from None
        key = override.key_or_group
        if override.type in (OverrideType.DEL, OverrideType.ADD) or override.package is not None:
            raise ValueError(f"{where}: only 'key=value' or '++key=value' for an existing key is allowed")
        if override.is_sweep_override():
            raise ValueError(f"{where}: a sweep is not a value")
        if any(_HYDRA_KEY.match(part) for part in key.split(".")):
            raise ValueError(f"{where}: sets Hydra's {key.rsplit('.', 1)[-1]} (instantiates code); not allowed")
        if key not in nodes:
            raise ValueError(f"{where}: {key!r} is not a key of the model config {config_file.name}")
        _check_value(override.value(), where, nodes)


def check_config(config_file: Path) -> None:
    """Raise ValueError unless a local model config instantiates only SAM2's own modules.

    Naming a .yaml in a recipe must not run other code: Hydra builds every ``_target_`` the
    config names (the released configs name only ``sam2.modeling`` classes).
    """
    data = _read_config(config_file)
    if "defaults" in data:
        raise ValueError(f"config {config_file}: a 'defaults' list composes other files; a model config needs none")
    nodes = dict(_paths(data))
    for key, value in nodes.items():
        name = key.rsplit(".", 1)[-1]
        if name == "_target_" and isinstance(value, str) and value.startswith("sam2.modeling."):
            continue
        if _HYDRA_KEY.match(name):
            raise ValueError(
                f"config {config_file}: {key}: {value!r} is not a sam2.modeling class; only those are instantiated"
            )
        _check_value(value if not isinstance(value, (dict, list)) else None, f"config {config_file}: {key}", nodes)


def _read_config(config_file: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"config {config_file}: cannot read it: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config {config_file}: not a YAML mapping")
    return data


def _paths(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every mapping key and list item in a config, nested ones included."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}{key}"
        yield path, value
        yield from _paths(value, path + ".")


def _check_value(value: Any, where: str, nodes: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if _HYDRA_KEY.match(str(key)):
                raise ValueError(f"{where}: the value sets Hydra's {key} (instantiates code); not allowed")
            _check_value(item, where, nodes)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, where, nodes)
    elif isinstance(value, str) and "${" in value:
        refs = _INTERPOLATION.findall(value)
        if value.count("${") != len(refs) or any(isinstance(nodes.get(ref, {}), (dict, list)) for ref in refs):
            raise ValueError(
                f"{where}: an interpolation may only name a scalar value of the model config, "
                "like ${scratch.resolution} (no resolvers, no config nodes)"
            )


def _config_file(params: Any) -> Path:
    """The .yaml an override set applies to: a local file, a packaged name, or the Hub id's."""
    import importlib.util

    config = params.config
    if config is None:
        from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

        if params.model not in HF_MODEL_ID_TO_FILENAMES:
            raise ValueError(f"overrides: cannot check them: {params.model!r} is not a SAM2 Hub id the package knows")
        config = HF_MODEL_ID_TO_FILENAMES[params.model][0]
    path = Path(config)
    if path.suffix in {".yaml", ".yml"} and path.is_file():
        return path
    spec = importlib.util.find_spec("sam2")  # the package folder, without importing (Hydra set-up) it
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("overrides: cannot check them: the sam2 package is not installed")
    packaged = Path(spec.submodule_search_locations[0], config if config.endswith(".yaml") else config + ".yaml")
    if not packaged.is_file():
        raise ValueError(f"overrides: cannot check them: config {config!r} not found (a local .yaml or a package name)")
    return packaged


class SAM2Segmenter(Segmenter):
    """SAM2 automatic mask generator with the paper's parameters (Hub id or local checkpoint)."""

    requires = {"torch": "iqa[models]", "huggingface_hub": "iqa[models]", "sam2": "sam2==1.1.0"}

    class Params(Params):
        model: str = DEFAULT_MODEL
        config: str | None = None
        checkpoint: str | None = None
        overrides: list[str] = Field(default_factory=list)
        device: str = "auto"
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        max_side: int | None = Field(default=1024, ge=1)
        # SAM2AutomaticMaskGenerator arguments; defaults are supplementary Table 2,
        # the rest are the package's own defaults.
        points_per_side: int | None = Field(default=8, ge=1)
        point_grids: list[list[tuple[float, float]]] | None = None
        points_per_batch: int = Field(default=128, ge=1)
        pred_iou_thresh: float = 0.9
        stability_score_thresh: float = 0.8
        stability_score_offset: float = 0.7
        mask_threshold: float = 0.0
        box_nms_thresh: float = 0.9
        crop_n_layers: int = Field(default=0, ge=0)
        crop_nms_thresh: float = 0.7
        crop_overlap_ratio: float = 512 / 1500
        crop_n_points_downscale_factor: float = Field(default=1.2, gt=0)
        min_mask_region_area: int = Field(default=1000, ge=0)
        use_m2m: bool = False
        multimask_output: bool = True
        # Same masks as the package's path, computed without full-resolution RLE (module notes).
        fast_postprocess: bool = True

        @model_validator(mode="after")
        def _check(self) -> SAM2Segmenter.Params:
            if (self.points_per_side is None) == (self.point_grids is None):
                raise ValueError("set exactly one of points_per_side and point_grids")
            if self.point_grids is not None and len(self.point_grids) != self.crop_n_layers + 1:
                raise ValueError("point_grids needs one grid per crop layer (crop_n_layers + 1)")
            if self.checkpoint is not None and self.config is None:
                raise ValueError("a local checkpoint needs its config (package name or .yaml path)")
            if self.config is not None and self.checkpoint is None:
                raise ValueError("config is only used with a local checkpoint; set checkpoint too")
            return self

        @model_validator(mode="after")
        def _safe_config(self) -> SAM2Segmenter.Params:
            if self.config is not None and self.config.endswith((".yaml", ".yml")) and Path(self.config).is_file():
                check_config(Path(self.config))
            if self.overrides:
                check_overrides(self.overrides, _config_file(self))
            return self

    # fast_postprocess changes the cost, not the masks (tested bit-exact against the package)
    uncached_params = frozenset({"device", "points_per_batch", "fast_postprocess"})

    def __init__(self, params: Params | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._generator: Any = None
        self._autocast: Any = None

    @property
    def model_label(self) -> str:
        """What error messages call the model: the checkpoint path or the Hub id."""
        return self.params.checkpoint or self.params.model

    def load(self) -> None:
        import torch
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        from iqa_plugins._torch import resolve_device, resolve_dtype

        p = self.params
        device = resolve_device(p.device)
        dtype = resolve_dtype(p.dtype, device)
        config, checkpoint = self._resolve_files()
        model = _build(config, checkpoint, p.overrides, self.model_label).to(device)

        kwargs = p.model_dump(
            exclude={
                "model",
                "config",
                "checkpoint",
                "overrides",
                "device",
                "dtype",
                "max_side",
                "point_grids",
                "fast_postprocess",
            }
        )
        grids = None if p.point_grids is None else [np.asarray(g) for g in p.point_grids]
        generator = SAM2AutomaticMaskGenerator(model, point_grids=grids, output_mode="binary_mask", **kwargs)
        fit_predictor(generator.predictor, model.image_size, p.min_mask_region_area)
        self._generator = generator
        self._autocast = nullcontext if dtype == torch.float32 else lambda: torch.autocast(device.type, dtype=dtype)

    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """``max_side``: the core resizes a large image once, as ``_downscale`` would."""
        return _scaled(size, self.params.max_side)

    def segment(self, image: np.ndarray) -> list[np.ndarray]:
        if self._generator is None:
            self.load()
        work = _downscale(np.ascontiguousarray(image), self.params.max_side)
        if not work.flags.writeable:  # a decoded image's buffer: torch warns on tensors over it
            work = work.copy()
        p = self.params
        with self._autocast():
            if p.fast_postprocess and p.crop_n_layers == 0 and not p.use_m2m:
                return generate_fast(self._generator, work)
            records = self._generator.generate(work)
        return [np.asarray(r["segmentation"], dtype=bool) for r in records]

    def weights(self) -> list[Weights]:
        """The local checkpoint, or the Hub id's checkpoint file (for ``iqa check``)."""
        p = self.params
        if p.checkpoint is not None:
            return [Weights(path=p.checkpoint)]
        from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

        if p.model not in HF_MODEL_ID_TO_FILENAMES:
            return [Weights(path=p.model)]  # not a known Hub id: reported as a missing path
        return [Weights(repo=p.model, files=(HF_MODEL_ID_TO_FILENAMES[p.model][1],))]

    def _resolve_files(self) -> tuple[str, str]:
        """(config, checkpoint path): the recipe's local pair, or the Hub id's via the package table."""
        p = self.params
        if p.checkpoint is not None:
            assert p.config is not None
            if not Path(p.checkpoint).is_file():
                raise ModelUnavailable(p.checkpoint, "checkpoint file not found", LOCAL_HINT)
            return p.config, p.checkpoint
        from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

        if p.model not in HF_MODEL_ID_TO_FILENAMES:
            known = ", ".join(sorted(HF_MODEL_ID_TO_FILENAMES))
            raise ModelUnavailable(p.model, f"not a SAM2 Hub id the sam2 package knows ({known})", LOCAL_HINT)
        config, filename = HF_MODEL_ID_TO_FILENAMES[p.model]
        from huggingface_hub import hf_hub_download

        from iqa_core.weights import hub_unreachable, unavailable_reason

        unreachable = hub_unreachable()  # one probe: offline, the cache answers at once
        try:
            return config, hf_hub_download(repo_id=p.model, filename=filename)
        except Exception as e:  # offline, missing file, auth: all mean "not loadable here"
            hint = (
                f"Download {filename} from {p.model} where you have internet, then set "
                f"the recipe's `checkpoint:` to that file and `config: {config}`."
            )
            raise ModelUnavailable(p.model, unavailable_reason(p.model) if unreachable else _reason(e), hint) from e


def _reason(e: Exception) -> str:
    return f"{type(e).__name__}: {e}".rstrip(". ")


def _build(config: str, checkpoint: str, overrides: list[str], label: str) -> torch.nn.Module:
    """Instantiate the architecture from its Hydra config and load the checkpoint strictly.

    ``config`` is a name in the sam2 package's config tree or a path to a .yaml file.
    Loading the state dict here (not in ``build_sam2``) turns key mismatches into a
    readable error instead of the package's bare ``RuntimeError()``.
    """
    import torch
    from hydra.errors import HydraException
    from sam2.build_sam import build_sam2

    path = Path(config)
    try:
        if path.suffix in {".yaml", ".yml"} and path.is_file():
            with _config_dir(path.resolve().parent):
                model = build_sam2(path.name, None, device="cpu", hydra_overrides_extra=overrides)
        else:
            model = build_sam2(config, None, device="cpu", hydra_overrides_extra=overrides)
    except HydraException as e:
        raise ModelUnavailable(label, f"config {config!r} could not be composed: {e}", LOCAL_HINT) from e
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state), strict=True)
    except (RuntimeError, OSError, AttributeError) as e:
        raise ModelUnavailable(
            label, f"checkpoint {checkpoint!r} does not match config {config!r}: {e}", LOCAL_HINT
        ) from e
    return model


@contextmanager
def _config_dir(directory: Path) -> Iterator[None]:
    """Compose from ``directory`` instead of the sam2 package, restoring Hydra's global
    state (which ``import sam2`` set up) afterwards."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.2"):
            yield
    finally:
        restore_gh_from_backup(backup)


def _downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Resize so the longer side is at most ``max_side`` (antialiased, aspect kept)."""
    h, w = image.shape[:2]
    size = _scaled((w, h), max_side)
    if size == (w, h):
        return image
    from PIL import Image

    return np.array(Image.fromarray(image).resize(size, Image.BILINEAR))


def _scaled(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(width, height) with the longer side at most ``max_side``, aspect kept."""
    w, h = size
    if max_side is None or max(h, w) <= max_side:
        return size
    scale = max_side / max(h, w)
    return (max(1, math.floor(w * scale + 0.5)), max(1, math.floor(h * scale + 0.5)))
