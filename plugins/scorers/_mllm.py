"""Standard-guided scoring with a multimodal LLM: one forward pass, K level-token logits.

The paper greedily generates one answer token. Reading the logits of the K level tokens at
the answer position (the last prompt position, once the chat template has opened the
assistant turn) gives the same argmax with no invalid answers, plus a distribution whose
expectation is a continuous score. All views of a batch go through one left-padded forward
pass that keeps only the last position's logits (``logits_to_keep=1``), so the (N, L, V)
logits of a 7B model are never materialised.

Nothing here imports torch or transformers at module level: the CLI lists plugins without them.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from iqa_core.api import LevelProbs, Params, Scorer, Standard, View
from iqa_core.errors import IQAError, ModelUnavailable

if TYPE_CHECKING:
    import torch

SystemRole = Literal["system", "prepend"]


class MLLMParams(Params):
    """Parameters every MLLM scorer shares."""

    model: str
    revision: str | None = None
    local_files_only: bool = False
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(default=8, ge=1)


# ------------------------------------------------------------------------- loading


def model_source(model: str) -> str:
    """An existing local directory, or a Hub id; a missing local path is a user error."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    looks_like_path = model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
    if path.exists() or looks_like_path:
        raise ModelUnavailable(
            model,
            "not a model directory" if path.exists() else "no such directory",
            "Point the model parameter at a directory holding the model's config and weights "
            "(e.g. from `huggingface-cli download ID --local-dir DIR`), or give a Hub id.",
        )
    return model


@contextmanager
def loading(model: str) -> Iterator[None]:
    """Turn the ways a download or load fails (offline, unknown id, missing package) into
    :class:`ModelUnavailable`, so the CLI prints one clear line instead of a traceback."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    try:
        yield
    except ModelUnavailable:
        raise
    except ImportError as exc:
        raise ModelUnavailable(
            model,
            f"a package it needs is missing or incompatible ({exc})",
            "Install the package it names (see the model card).",
        ) from exc
    except (OSError, HfHubHTTPError, HFValidationError) as exc:
        raise ModelUnavailable(model, _reason(model, exc)) from exc


def _reason(model: str, exc: BaseException) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    if offline and not Path(model).expanduser().is_dir():
        return "HF_HUB_OFFLINE is set and there is no copy in the local Hugging Face cache"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first[:300]


# ------------------------------------------------------------------------ labels


def level_token_ids(tokenizer: Any, labels: Sequence[str], model: str) -> list[int]:
    """The one token id of each level label, in label order.

    The answer starts the assistant turn, so each label is encoded bare (no special tokens,
    no leading space). A label that is several tokens cannot be read from one position.
    """
    ids: list[int] = []
    for label in labels:
        encoded = tokenizer.encode(label, add_special_tokens=False)
        if len(encoded) != 1:
            pieces = tokenizer.convert_ids_to_tokens(encoded)
            raise IQAError(
                f"level label {label!r} is {len(encoded)} tokens {pieces} in the tokenizer of "
                f"{model!r}; every label must be exactly one token. Use labels that are single "
                "tokens for this model (the digits 1-9 are in the reference models)."
            )
        ids.append(encoded[0])
    if len(set(ids)) != len(ids):
        raise IQAError(f"level labels {list(labels)} do not map to distinct tokens in {model!r}")
    return ids


def level_probs(
    logits: torch.Tensor, label_ids: Sequence[int], values: tuple[float, ...]
) -> LevelProbs:
    """(N, V) last-position logits -> softmax over the K label tokens, and whether the
    unconstrained argmax was a label token (a diagnostic of prompt-following)."""
    import torch

    ids = torch.tensor(list(label_ids), device=logits.device)
    probs = torch.softmax(logits[:, ids].double(), dim=-1)  # float64: rows sum to 1 exactly enough
    top = torch.isin(logits.argmax(dim=-1), ids)
    return LevelProbs(probs.cpu().numpy(), values, top.cpu().numpy().astype(bool))


# ------------------------------------------------------------------------ prompts


def conversation(system: str, user: str, role: SystemRole) -> list[dict[str, Any]]:
    """One image + the standard's texts as chat messages; the image itself travels separately.

    ``prepend`` puts the system text at the start of the user turn, for templates without a
    system role.
    """
    if system and role == "prepend":
        user = f"{system}\n\n{user}"
    turns = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]}]
    if system and role == "system":
        turns.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    return turns


def template_accepts_system(processor: Any, system: str) -> bool:
    """Whether the chat template renders a system turn: some raise, some silently drop it."""
    from jinja2.exceptions import TemplateError

    try:
        text = processor.apply_chat_template(
            conversation(system, "", "system"), add_generation_prompt=True, tokenize=False
        )
    except TemplateError:
        return False
    return system in text


# ------------------------------------------------------------------------ scorer


class MLLMScorer(Scorer):
    """Base of the chat-template MLLM scorers; subclasses say how to load the model."""

    Params = MLLMParams
    uncached_params = Scorer.uncached_params | {"local_files_only"}

    @abstractmethod
    def _load(self, source: str) -> tuple[Any, Any]:
        """(model, processor) from a Hub id or local directory."""

    def load(self, standard: Standard) -> None:
        from iqa_plugins._torch import resolve_device, resolve_dtype

        self.device = resolve_device(self.params.device)
        self.dtype = resolve_dtype(self.params.dtype, self.device)
        with loading(self.params.model):
            self.model, self.processor = self._load(model_source(self.params.model))
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:  # e.g. Llama tokenizers; masked out, so any id works
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._label_ids: dict[tuple[str, ...], list[int]] = {}
        self._prompts: dict[str, str] = {}
        self.label_ids(standard)
        self.prompt(standard)  # a template that cannot render the standard fails here, not mid-run

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def hub_kwargs(self) -> dict[str, Any]:
        return {"revision": self.params.revision, "local_files_only": self.params.local_files_only}

    def model_kwargs(self) -> dict[str, Any]:
        """Placement and precision for ``from_pretrained``; SDPA attention on CUDA."""
        kwargs: dict[str, Any] = {"dtype": self.dtype, "device_map": str(self.device)}
        if self.device.type == "cuda":
            kwargs["attn_implementation"] = "sdpa"
        return kwargs

    def label_ids(self, standard: Standard) -> list[int]:
        labels = tuple(standard.labels)
        if labels not in self._label_ids:
            self._label_ids[labels] = level_token_ids(self.tokenizer, labels, self.params.model)
        return self._label_ids[labels]

    def system_role(self, standard: Standard) -> SystemRole:
        return "system" if template_accepts_system(self.processor, standard.system) else "prepend"

    def prompt(self, standard: Standard) -> str:
        """Chat-formatted text up to the opened assistant turn, image placeholder unexpanded."""
        key = standard.prompt_key()
        if key not in self._prompts:
            turns = conversation(standard.system, standard.user, self.system_role(standard))
            self._prompts[key] = self.processor.apply_chat_template(
                turns, add_generation_prompt=True, tokenize=False
            )
        return self._prompts[key]

    def processor_kwargs(self) -> dict[str, Any]:
        """Extra arguments for the processor call (e.g. Janus' generation mode)."""
        return {}

    def encode(self, views: Sequence[View], standard: Standard) -> Any:
        """Left-padded model inputs for the views, on the model's device and float dtype."""
        text = self.prompt(standard)
        bos = self.tokenizer.bos_token
        inputs = self.processor(
            text=[text] * len(views),
            images=[[view.image] for view in views],
            padding=True,
            padding_side="left",
            # a template that writes BOS itself must not get a second one
            add_special_tokens=not (bos and text.startswith(bos)),
            return_tensors="pt",
            **self.processor_kwargs(),
        )
        return inputs.to(self.device, dtype=self.dtype)

    def last_logits(self, views: Sequence[View], standard: Standard) -> torch.Tensor:
        """(N, V) next-token logits after each view's prompt, from one batched forward pass."""
        out = self.model(**self.encode(views, standard), logits_to_keep=1, use_cache=False)
        return out.logits[:, -1, :]

    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        import torch

        ids = self.label_ids(standard)
        if not views:
            return LevelProbs(np.zeros((0, len(ids))), standard.values, np.zeros(0, dtype=bool))
        with torch.inference_mode():
            logits = self.last_logits(views, standard)
        return level_probs(logits, ids, standard.values)
