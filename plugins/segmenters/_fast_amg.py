"""The sam2 plugin's cheaper automatic mask generation: the package's steps in another order,
the same masks bit for bit (see the notes at the top of ``sam2.py``; ``tests/plugins/test_sam2.py``
checks both paths agree). Everything here runs inside ``SAM2Segmenter.load``/``segment``, after
``import sam2``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def fit_predictor(predictor: Any, image_size: int, min_area: int) -> None:
    """Adapt the package's image predictor to this model and this install.

    The predictor hard-codes the backbone feature sizes of a 1024-pixel model; they are
    set from the model's ``image_size`` (unchanged for released models). Without the
    ``sam2._C`` extension the small-region filter is this plugin's (see module notes).
    """
    predictor._bb_feat_sizes = [(image_size // s, image_size // s) for s in (4, 8, 16)]
    if min_area <= 0:
        return
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        transforms = predictor._transforms
        transforms.postprocess_masks = lambda masks, orig_hw: postprocess(
            masks, orig_hw, transforms.mask_threshold, min_area
        )


def postprocess(masks: torch.Tensor, orig_hw: tuple[int, int], threshold: float, max_area: int) -> torch.Tensor:
    """The package's post-processing: the small-region filter, then upsampling to ``orig_hw``."""
    import torch.nn.functional as F

    from iqa_plugins.segmenters._components import fill_small_regions

    return F.interpolate(fill_small_regions(masks, threshold, max_area), orig_hw, mode="bilinear", align_corners=False)


# Candidates upsampled to the working resolution at once: bounds the float32 memory of a step
# (64 x 1024 x 768 x 4 B = 200 MB) whatever points_per_side and points_per_batch are.
UPSAMPLE_CHUNK = 64


def generate_fast(generator: Any, image: np.ndarray) -> list[np.ndarray]:
    """The package's ``generate`` for one crop layer and no m2m, with the same result.

    Follows ``SAM2AutomaticMaskGenerator._process_crop``/``_process_batch`` step by step
    (filters, stability score, ``batched_mask_to_box``, edge filter, ``batched_nms`` with
    the predicted IoUs), but: the IoU filter comes first, then the small-region filter on
    the low-resolution logits of the survivors; upsampling happens per chunk of IoU survivors and only the
    boxes and scores are kept; the kept masks are upsampled once more at the end. Returns
    boolean (H, W) masks in the package's order (NMS order, highest predicted IoU first).
    """
    import torch
    from sam2.utils.amg import (
        batch_iterator,
        batched_mask_to_box,
        calculate_stability_score,
        is_box_near_crop_edge,
    )
    from torchvision.ops.boxes import batched_nms

    from iqa_plugins.segmenters._components import fill_small_regions

    g = generator
    predictor = g.predictor
    h, w = image.shape[:2]
    crop_box = [0, 0, w, h]
    transforms = predictor._transforms
    predictor.set_image(image)
    points_for_image = g.point_grids[0] * np.array((h, w))[None, ::-1]

    def upsample(low: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(low, (h, w), mode="bilinear", align_corners=False)

    lows, ious, boxes = [], [], []
    for (points,) in batch_iterator(g.points_per_batch, points_for_image):
        pts = torch.as_tensor(points, dtype=torch.float32, device=predictor.device)
        in_points = transforms.transform_coords(pts, normalize=True, orig_hw=(h, w))
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        low, iou = predict_low_res(predictor, in_points[:, None, :], in_labels[:, None], g.multimask_output)
        low, iou = low.flatten(0, 1), iou.flatten(0, 1)
        if g.pred_iou_thresh > 0.0:  # first: it needs no mask, and most candidates fail it
            keep = iou > g.pred_iou_thresh
            low, iou = low[keep], iou[keep]
        if len(low) == 0:
            continue
        low = low.float()  # as the package's post-processing, which upsamples float32 logits
        if g.min_mask_region_area > 0:  # per mask, so it commutes with the IoU filter
            low = fill_small_regions(low, transforms.mask_threshold, g.min_mask_region_area)
        for start in range(0, len(low), UPSAMPLE_CHUNK):
            chunk_low = low[start : start + UPSAMPLE_CHUNK]
            chunk_iou = iou[start : start + UPSAMPLE_CHUNK]
            masks = upsample(chunk_low[:, None]).squeeze(1)
            keep = torch.ones(len(masks), dtype=torch.bool, device=masks.device)
            if g.stability_score_thresh > 0.0:
                stability = calculate_stability_score(masks, g.mask_threshold, g.stability_score_offset)
                keep = stability >= g.stability_score_thresh
            chunk_boxes = batched_mask_to_box(masks > g.mask_threshold)
            keep &= ~is_box_near_crop_edge(chunk_boxes, crop_box, crop_box)
            lows.append(chunk_low[keep])
            ious.append(chunk_iou[keep])
            boxes.append(chunk_boxes[keep])
            del masks
    predictor.reset_predictor()
    if not lows or sum(len(x) for x in lows) == 0:
        return []
    low, iou, box = torch.cat(lows), torch.cat(ious), torch.cat(boxes)
    kept = batched_nms(box.float(), iou, torch.zeros_like(box[:, 0]), iou_threshold=g.box_nms_thresh)
    out: list[np.ndarray] = []
    for start in range(0, len(kept), UPSAMPLE_CHUNK):
        idx = kept[start : start + UPSAMPLE_CHUNK]
        masks = upsample(low[idx][:, None]).squeeze(1) > g.mask_threshold
        out.extend(masks.cpu().numpy())
    return out


def predict_low_res(
    predictor: Any, point_coords: torch.Tensor, point_labels: torch.Tensor, multimask: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``SAM2ImagePredictor._predict`` for point prompts, stopping at the low-res logits
    (before its post-processing and upsampling to the image size)."""
    model = predictor.model
    sparse, dense = model.sam_prompt_encoder(points=(point_coords, point_labels), boxes=None, masks=None)
    high_res = [level[-1].unsqueeze(0) for level in predictor._features["high_res_feats"]]
    low, iou, _, _ = model.sam_mask_decoder(
        image_embeddings=predictor._features["image_embed"][-1].unsqueeze(0),
        image_pe=model.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        repeat_image=point_coords.shape[0] > 1,
        high_res_features=high_res,
    )
    return low, iou
