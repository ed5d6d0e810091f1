"""The chat-formatted prompt, and the answer position where the level tokens are read.

The answer position is where the reply's first character goes, which is not always right after
the generation prompt: Janus-Pro's template writes ``<|Assistant|>: 7`` after a generation
prompt ending ``<|Assistant|>:``, and its byte-level tokenizer makes that space a token of its
own; Qwen3 writes an empty thinking block first. At load, :func:`reply_opening` finds that text
by rendering a reply and the prompt is extended with it, so the level tokens are read where the
model writes the label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from iqa_core.api import Scorer, Standard
from iqa_core.errors import IQAError

SystemRole = Literal["system", "prepend"]

Render = Callable[[list[dict[str, Any]], bool], str]
"""(turns, add_generation_prompt) -> the chat template's text."""


def assistant_turn(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def reply_opening(render: Render, turns: list[dict[str, Any]], label: str, model: str) -> str:
    """What the chat template writes between the generation prompt and a reply's first character.

    Renders the conversation with an assistant turn holding ``label`` (no generation prompt)
    and with the generation prompt alone; the text between the end of the prompt and the label
    is the opening: a space (Janus-Pro, LLaVA-1.5), nothing (Qwen2.5), an empty thinking block
    (Qwen3 unless ``enable_thinking`` is false).
    """
    prompt = render(turns, True)
    replied = render([*turns, assistant_turn(label)], False)
    at = replied.find(label, len(prompt))
    if not replied.startswith(prompt) or at < 0:
        raise IQAError(
            f"the chat template of {model!r} does not render a reply after its generation prompt "
            f"(prompt ends {prompt[-40:]!r}, a reply {label!r} renders as {replied[len(prompt) - 40 :]!r}), "
            "so the answer position cannot be found; use a model whose template writes replies after "
            "the generation prompt"
        )
    return replied[len(prompt) : at]


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


def template_accepts_system(render: Render, system: str) -> bool:
    """Whether the chat template renders a system turn: some raise, some silently drop it."""
    from jinja2.exceptions import TemplateError

    try:
        text = render(conversation(system, "", "system"), True)
    except TemplateError:
        return False
    return system in text


def answer_tokens(tokenizer: Any, prompt: str, label: str, model: str) -> list[int]:
    """The tokens the model emits to answer ``label`` right after ``prompt``.

    Tokenizers treat a bare label differently from the same text after the prompt: a
    sentencepiece tokenizer encodes "7" alone as "▁7" but "ASSISTANT:7" ends in "7". So the
    answer is encode(prompt + label) minus encode(prompt), never encode(label).
    """
    base = tokenizer.encode(prompt, add_special_tokens=False)
    full = tokenizer.encode(prompt + label, add_special_tokens=False)
    if full[: len(base)] != base:
        tail = tokenizer.convert_ids_to_tokens(base[-2:])
        raise IQAError(
            f"in the tokenizer of {model!r} the prompt's last tokens {tail} merge with the level "
            f"label {label!r}, so the answer cannot be read after the prompt; end the prompt "
            "with a separator the labels do not merge with"
        )
    return full[len(base) :]


def level_token_ids(tokenizer: Any, labels: Sequence[str], model: str, prompt: str) -> list[int]:
    """The one token id of each level label as the answer after ``prompt``, in label order.

    A label that is several tokens cannot be read from one position.
    """
    ids: list[int] = []
    for label in labels:
        encoded = answer_tokens(tokenizer, prompt, label, model)
        if len(encoded) != 1:
            pieces = tokenizer.convert_ids_to_tokens(encoded)
            raise IQAError(
                f"level label {label!r} is {len(encoded)} tokens {pieces} in the tokenizer of "
                f"{model!r} after the prompt; every label must be exactly one token. Use labels "
                "that are single tokens for this model (the digits 1-9 are in the reference "
                "models), or answer: generate."
            )
        ids.append(encoded[0])
    if len(set(ids)) != len(ids):
        raise IQAError(f"level labels {list(labels)} do not map to distinct tokens in {model!r}")
    return ids


class ChatPrompts(Scorer):
    """The prompt of a standard from the model's chat template, and its level tokens' ids.

    Set by the loading subclass (:class:`~iqa_plugins.scorers.mllm.scorer.MLLMScorer`):
    ``processor``, and the per-standard caches ``_prompts`` and ``_label_ids``.
    """

    processor: Any
    _prompts: dict[str, str]
    _label_ids: dict[str, list[int]]

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def label_ids(self, standard: Standard) -> list[int]:
        """Level token ids as answers after this standard's prompt. In generate mode labels
        need not be single tokens: the ids are those that are, for the ``top_is_level``
        diagnostic."""
        key = standard.prompt_key()
        if key not in self._label_ids:
            tok, prompt, model = self.tokenizer, self.prompt(standard), self.params.model
            if self.params.answer == "generate":
                answers = (answer_tokens(tok, prompt, label, model) for label in standard.labels)
                self._label_ids[key] = [ids[0] for ids in answers if len(ids) == 1]
            else:
                self._label_ids[key] = level_token_ids(tok, standard.labels, model, prompt)
        return self._label_ids[key]

    # -------------------------------------------------------------- chat template

    def render(self, turns: list[dict[str, Any]], generation: bool) -> str:
        """The chat template's text for ``turns`` (with the generation prompt if ``generation``)."""
        return self.processor.apply_chat_template(
            turns, add_generation_prompt=generation, tokenize=False, **self.params.template_options
        )

    def system_role(self, standard: Standard) -> SystemRole:
        return "system" if template_accepts_system(self.render, standard.system) else "prepend"

    def opened_reply(self, turns: list[dict[str, Any]], standard: Standard) -> str:
        """The generation prompt, what the template writes before the reply's first character,
        and the answer stem: the text after which the model writes the level label."""
        opening = reply_opening(self.render, turns, standard.labels[0], self.params.model)
        return self.render(turns, True) + opening + self.params.answer_stem

    def prompt(self, standard: Standard) -> str:
        """Chat-formatted text up to where the reply's label goes, image placeholder unexpanded."""
        key = standard.prompt_key()
        if key not in self._prompts:
            turns = conversation(standard.system, standard.user, self.system_role(standard))
            self._prompts[key] = self.opened_reply(turns, standard)
        return self._prompts[key]
