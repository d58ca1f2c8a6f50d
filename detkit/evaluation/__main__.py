"""``python -m detkit.evaluation GT.json DT.json [--json] [--per-class] [--voc] [--voc07]``.

Reads a COCO ground-truth file and a COCO results file and prints pycocotools' 12-line summary,
or with ``--json`` one object ``{"stats": [...12], "map50", "map50_95", "per_class"?, "voc"?}``.
A missing or malformed file prints the reason on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from detkit.errors import YmirError
from detkit.evaluation.coco import SUMMARY, CocoResult, evaluate_flat
from detkit.evaluation.cocofile import load_coco_files
from detkit.evaluation.voc import evaluate_voc_flat


def _text(res: CocoResult, per_class: bool, voc) -> str:
    max_dets = sorted(res.params.max_dets)
    lines = []
    for (ap, iou, area, mi), v in zip(SUMMARY, res.stats, strict=True):
        title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
        iou_s = "0.50:0.95" if iou is None else f"{iou:0.2f}"
        lines.append(f" {title:<18} {kind} @[ IoU={iou_s:<9} | area={area:>6s} | maxDets={max_dets[mi]:>3d} ] = {v:0.3f}")
    if per_class:
        ap, ap50 = res.per_class_ap, res.per_class_ap50
        lines.append(f"{'class':<24} {'AP':>7} {'AP50':>7}")
        for c in res.class_ids.tolist():
            lines.append(f"{res.class_names.get(c, str(c)):<24} {ap[c]:7.3f} {ap50[c]:7.3f}")
    if voc is not None:
        metric = "11-point" if voc.use_07_metric else "all-point"
        lines.append(f"VOC mAP@{voc.iou_thr:.2f} ({metric}) = {voc.map:0.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0, or 2 on bad input)."""
    ap = argparse.ArgumentParser(prog="python -m detkit.evaluation", description="COCO/VOC bbox evaluation.")
    ap.add_argument("gt", help="COCO ground-truth JSON (images, annotations, categories)")
    ap.add_argument("dt", help="COCO results JSON (list of image_id, category_id, bbox, score)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--per-class", action="store_true", help="add AP and AP50 per class")
    ap.add_argument("--voc", action="store_true", help="add VOC mAP@0.5 (all-point)")
    ap.add_argument("--voc07", action="store_true", help="VOC with the 2007 11-point metric (implies --voc)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        data = load_coco_files(args.gt, args.dt)
        res = evaluate_flat(data)
        voc = evaluate_voc_flat(data, 0.5, use_07_metric=args.voc07) if (args.voc or args.voc07) else None
    except YmirError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    if args.json:
        out = res.to_dict(per_class=args.per_class)
        if voc is not None:
            out["voc"] = voc.to_dict()
        print(json.dumps(out))
    else:
        print(_text(res, args.per_class, voc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
