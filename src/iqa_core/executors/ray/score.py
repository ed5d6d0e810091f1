"""Step 3, prepare and score (an actor pool holding the scorers, a share of a GPU each).

A group's views, of all its images, are batched per scorer as the local run batches them
(the pipeline's ``Pool``: sorted by cost, packed by ``batch_size`` and ``batch_tokens``);
an identical view twice in a group is scored once (the ``Ledger``). The processor loads
with the model, so batches are prepared here, the next one in a thread while the current
one runs forward (``score.prepare`` / ``score.forward``, with their view-by-view retry).
Each view gains its level probabilities or why it failed; then the group's images are
finished here (``finish``) and only their results and new store rows go on.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from ...api import View
from ...pipeline import score
from ...pipeline.batches import Ledger, Pending, Pool
from ...pipeline.items import Item
from .finish import finish_group
from .wire import Group, Step, levels_to, region_from


class ScoreStep(Step):
    def run(self, group: Group) -> list[Group]:
        pipeline, ledger = self.pipeline, Ledger()
        items: dict[str, Item] = {}
        queued: dict[str, list[Pending]] = {label: [] for label in pipeline.labels}
        pixels = memoryview(group.pixels)
        for label in {view["label"] for view in group.views if "error" not in view}:
            pipeline.load_scorer(label)  # before costing: a scorer's view_tokens may need its processor
        for view in group.views:
            if "error" in view:  # could not be cut
                continue
            label, key = view["label"], tuple(view["key"])
            item = items.setdefault(view["path"], Item(0, view["path"]))
            item.levels.setdefault(label, {})
            item.failed.setdefault(label, {})
            first = not ledger.waiting(label, key)
            ledger.claim(label, key, item)
            if first:
                start, end = view["at"]
                image = Image.frombytes(view["mode"], tuple(view["size"]), bytes(pixels[start:end]))
                cut = View(image=image, key=key[1], source=view["path"])
                tokens = pipeline.scorer(label)[1].view_tokens(image.size)
                cost = image.size[0] * image.size[1] if tokens is None else tokens
                queued[label].append(Pending(key, item, region_from(view["region"]), cost, tokens, cut))
        ready = []
        for label, scorer, _ in pipeline.scorers:
            if queued[label]:
                pool = Pool(scorer, pipeline.recipe.runtime.batch_lookahead)
                ready += [(label, views) for views in pool.add(queued[label]) + pool.flush()]
        self._score(ledger, ready)
        for view in group.views:
            if "error" not in view:
                item, key = items[view["path"]], tuple(view["key"])
                levels = item.levels[view["label"]].get(key)
                if levels is not None:
                    view["levels"] = levels_to(levels)
                else:
                    view["error"] = item.failed[view["label"]].get(key, "not scored")
        finish_group(pipeline, group)
        return [group]

    def _score(self, ledger: Ledger, ready: list[tuple[str, list[Pending]]]) -> None:
        """Forward each batch while the next one is prepared in a thread."""
        pipeline, todo = self.pipeline, deque(ready)
        with ThreadPoolExecutor(1, thread_name_prefix="iqa-prepare") as ahead:

            def next_batch() -> Future[score.Batch] | None:
                return ahead.submit(score.prepare, pipeline, *todo.popleft()) if todo else None

            coming = next_batch()
            while coming is not None:
                current = coming.result()
                coming = next_batch()
                score.forward(pipeline, ledger, current)
