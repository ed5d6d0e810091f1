"""Standard-guided scoring with a multimodal LLM: one forward pass, K level-token logits.

The paper greedily generates one answer token. Reading the logits of the K level tokens at
the answer position gives the same argmax with no invalid answers, plus a distribution whose
expectation is a continuous score. The base every MLLM family builds on is split by concern:

- :mod:`.params`: the parameters every MLLM scorer shares;
- :mod:`.chat`: the chat-formatted prompt and where the answer goes (the level tokens' ids);
- :mod:`.answers`: logits or a generated number -> level probabilities;
- :mod:`.inputs`: views -> processor inputs, length buckets and token counts;
- :mod:`.loading`: model sources and the load's failures as one clear line;
- :mod:`.scorer`: :class:`~.scorer.MLLMScorer`, loading and the forward pass.

A family (``hf_vlm``, ``janus_pro``, ``mplug_owl3``) subclasses ``MLLMScorer`` and says how to
load its model. Nothing here imports torch or transformers at module level: the CLI lists
plugins without them.
"""
