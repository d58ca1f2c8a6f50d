"""Detection evaluation: COCO (pycocotools' numbers, vectorised), VOC AP, box labels, curves.

Quick use (what trainers and converters call)::

    from detkit.evaluation import evaluate_detections
    m = evaluate_detections(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, num_classes)
    m["mAP50"], m["mAP50_95"], m["per_class"][0]["ap50"], m["stats"]  # 12 pycocotools numbers

Each argument is a list with one entry per image: ``(N, 4)`` ``xyxy`` pixel boxes, ``(N,)``
class ids in ``[0, num_classes)``, ``(N,)`` scores. Values are -1 where undefined (no ground
truth), as in pycocotools.

Per-image records::

    from detkit.evaluation import ImageGT, ImageDT, evaluate_coco
    res = evaluate_coco([ImageGT(boxes, classes, iscrowd=None, areas=None)],
                        [ImageDT(boxes, scores, classes)], class_ids=[0, 1, 2])
    res.stats          # (12,) AP, AP50, AP75, AP S/M/L, AR1, AR10, AR100, AR S/M/L
    res.map50, res.map50_95, res.per_class_ap, res.per_class_ap50   # per class: {id: ap}
    res.precision      # (T, R, K, A, M) like COCOeval.eval["precision"]; res.recall (T, K, A, M)

COCO files (also the CLI ``python -m detkit.evaluation GT.json DT.json [--json] [--per-class]
[--voc] [--voc07]``)::

    from detkit.evaluation import load_coco_files, evaluate_flat, evaluate_voc_flat
    data = load_coco_files("gt.json", "results.json")   # BadInput on a bad file
    evaluate_flat(data).stats; evaluate_voc_flat(data, 0.5, use_07_metric=False).map

Box labels at one confidence and one or several IoUs (YMIR codes ``TP FP FN MTP IGNORED``)::

    from detkit.evaluation import label_boxes, label_boxes_multi
    per_image = label_boxes(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes,
                            iou_thr=0.5, conf_thr=0.3)
    per_image[0].gt_labels, .dt_labels, .gt_match, .dt_match   # match: partner index or -1
    by_iou = label_boxes_multi(..., iou_thrs=(0.5, 0.75))      # {0.5: [...], 0.75: [...]}

Curves on a :class:`FlatSet` (``flat_from_lists(...)``, ``flat_from_images(...)`` or
``load_coco_files(...)``): ``pr_curves(data, iou_thr)`` per class, ``f1_sweep(data, iou_thr)``
(P/R/F1 per confidence and the best-F1 threshold), ``confusion_matrix(data, iou_thr, conf_thr)``
(``(K+1, K+1)``, last row/column = background).

COCO numbers equal pycocotools' ``COCOeval`` (bbox) exactly, including its quirks: ties in score
keep input order (stable sort), detections are cut at 100 per (image, class), crowd boxes absorb
detections with IoU over the detection's area, the ground-truth ``area`` field decides the area
range, a ground-truth ``ignore`` field is not read (pycocotools overwrites it with ``iscrowd``),
and a match to annotation id 0 counts as unmatched. Speed: see ``scripts/bench/eval_coco.py``.
"""

from detkit.evaluation.api import evaluate_detections
from detkit.evaluation.coco import CocoParams, CocoResult, evaluate_coco, evaluate_flat
from detkit.evaluation.cocofile import flat_from_coco, load_coco_files
from detkit.evaluation.curves import F1Sweep, PRCurve, confusion_matrix, f1_sweep, pr_curves
from detkit.evaluation.data import FlatSet, ImageDT, ImageGT, flat_from_images, flat_from_lists
from detkit.evaluation.labels import FN, FP, IGNORED, MTP, TP, ImageLabels, label_boxes, label_boxes_multi
from detkit.evaluation.voc import VocResult, evaluate_voc_flat, voc_ap

__all__ = [
    "evaluate_detections",
    "evaluate_coco",
    "evaluate_flat",
    "CocoParams",
    "CocoResult",
    "load_coco_files",
    "flat_from_coco",
    "flat_from_lists",
    "flat_from_images",
    "FlatSet",
    "ImageGT",
    "ImageDT",
    "evaluate_voc_flat",
    "voc_ap",
    "VocResult",
    "label_boxes",
    "label_boxes_multi",
    "ImageLabels",
    "TP",
    "FP",
    "FN",
    "MTP",
    "IGNORED",
    "pr_curves",
    "f1_sweep",
    "confusion_matrix",
    "PRCurve",
    "F1Sweep",
]
