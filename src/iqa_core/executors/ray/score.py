"""Step 3, prepare and score (an actor pool holding the scorers, a share of a GPU each).

A Ray batch holds the views of many images. Per scorer they are batched as the local run
batches them (the pipeline's ``Pool``: sorted by cost, packed by ``batch_size`` and
``batch_tokens``); an identical view twice in a Ray batch is scored once (the ``Ledger``).
The processor loads with the model, so batches are prepared here, the next one in a thread
while the current one runs forward (``score.prepare`` / ``score.forward``, with their
view-by-view retry). Out: each view row with its level probabilities or why it failed.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from ...api import View
from ...pipeline import score
from ...pipeline.batches import Ledger, Pending, Pool
from ...pipeline.items import Item
from .wire import Batch, Step, levels_to, region_from, stats_of


class ScoreStep(Step):
    def run(self, batch: Batch) -> Batch:
        pipeline = self.pipeline
        ledger = Ledger()
        items: dict[str, Item] = {}
        queued: dict[str, list[Pending]] = {label: [] for label in pipeline.labels}
        infos = [json.loads(str(cell)) for cell in batch["info"]]
        for kind, path, info, pixels in zip(batch["kind"], batch["path"], infos, batch["pixels"]):
            if kind != "view" or "error" in info:
                continue
            label, key = info["label"], tuple(info["key"])
            item = items.setdefault(str(path), Item(0, str(path)))
            item.levels.setdefault(label, {})
            item.failed.setdefault(label, {})
            first = not ledger.waiting(label, key)
            ledger.claim(label, key, item)
            if first:
                image = Image.frombytes(info["mode"], tuple(info["size"]), bytes(pixels))
                cut = View(image=image, key=key[1], source=str(path))
                region = region_from(info["region"])
                queued[label].append(Pending(key, item, region, info["cost"], info["tokens"], cut))
        lookahead = pipeline.recipe.runtime.batch_lookahead
        ready = []
        for label, scorer, _ in pipeline.scorers:
            if queued[label]:
                pipeline.load_scorer(label)
                pool = Pool(scorer, lookahead)
                ready += [(label, views) for views in pool.add(queued[label]) + pool.flush()]
        self._score(ledger, ready)
        for info, path in zip(infos, batch["path"]):
            item = items.get(str(path))
            if item is not None and "key" in info:
                key = tuple(info["key"])
                levels = item.levels[info["label"]].get(key)
                if levels is not None:
                    info["levels"] = levels_to(levels)
                else:
                    info.setdefault("error", item.failed[info["label"]].get(key, "not scored"))
        stats = stats_of(batch)
        stats.update(pipeline.stats)
        return {
            "kind": list(map(str, batch["kind"])),
            "path": list(map(str, batch["path"])),
            "info": [json.dumps(info) for info in infos],
            "pixels": [b""] * len(infos),  # scored: the pixels go no further
            "stats": [json.dumps(dict(stats))] + [""] * (len(infos) - 1),
        }

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

    def passed(self, batch: Batch) -> Batch:
        n = len(batch["path"])
        return {
            "kind": list(map(str, batch["kind"])),
            "path": list(map(str, batch["path"])),
            "info": list(map(str, batch["info"])),
            "pixels": [b""] * n,
            "stats": [""] * n,
        }
