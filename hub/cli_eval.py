"""``ymir-hub evaluate`` (diagnosis of a prediction version) and ``ymir-hub dataset analyze``."""

from __future__ import annotations

import click

from hub.cli import CliContext, emit, json_option, pass_cli
from hub.cli_datasets import dataset

#: what ``evaluate --json`` prints without ``--full`` (curves and the confusion matrix are long)
_BRIEF = ("gt_version", "pred_version", "mode", "params", "images", "gt_boxes", "pred_boxes", "mAP50",
          "mAP50_95", "coco_stats", "voc_mAP", "voc_mAP50", "precision", "recall", "f1", "tp", "fp", "fn",
          "per_class", "evaluation_id", "cached", "elapsed_s")


def _num(x: float) -> str:
    return "  -  " if x is None or x < 0 else f"{x:.3f}"


def _eval_text(r: dict) -> str:
    p = r["params"]
    lines = [
        f"{r['pred_version']['name']} (version {r['pred_version']['id']}) vs ground truth of "
        f"{r['gt_version']['name']} (version {r['gt_version']['id']}): {r['images']} images, "
        f"{r['gt_boxes']} gt / {r['pred_boxes']} pred boxes{'  [cached]' if r['cached'] else ''}",
        f"  mAP50 {_num(r['mAP50'])}  mAP50-95 {_num(r['mAP50_95'])}  VOC mAP@{p['iou']:g} {_num(r['voc_mAP'])}",
        f"  at IoU {p['iou']:g}, conf {p['conf']:g}: P {_num(r['precision'])}  R {_num(r['recall'])}  "
        f"F1 {_num(r['f1'])}  (TP {r['tp']}, FP {r['fp']}, FN {r['fn']})",
        f"  {'class':<20} {'AP50':>6} {'AP':>6} {'VOC':>6} {'P':>6} {'R':>6} {'F1':>6} {'gt':>6} {'pred':>6}",
    ]
    for name, c in r["per_class"].items():
        lines.append(
            f"  {name:<20} {_num(c['ap50']):>6} {_num(c['ap']):>6} {_num(c['voc_ap']):>6} {_num(c['precision']):>6} "
            f"{_num(c['recall']):>6} {_num(c['f1']):>6} {c['gt']:>6} {c['pred']:>6}"
        )
    return "\n".join(lines)


@click.command("evaluate")
@click.option("--pred", "pred_id", type=int, required=True, help="The prediction version (its id).")
@click.option("--gt", "gt_id", type=int, default=None,
              help="The ground-truth version (default: the GT of the prediction version itself).")
@click.option("--iou", type=float, default=None, help="IoU for VOC AP, curves and labels (default 0.5).")
@click.option("--conf", type=float, default=None, help="Confidence of the P/R/F1 operating point (default 0.25).")
@click.option("--refresh", is_flag=True, help="Compute again instead of reading the cache.")
@click.option("--full", is_flag=True, help="With --json: also the PR curves, the sweep and the confusion matrix.")
@json_option
@pass_cli
def evaluate(cli: CliContext, pred_id: int, gt_id, iou, conf, refresh: bool, full: bool, as_json: bool) -> None:
    """Evaluate a prediction version against ground truth (cached: a repeat is instant)."""
    from hub import diagnosis

    res = diagnosis.evaluate(cli.database, pred_id, gt_id, iou, conf, refresh=refresh)
    out = res if full else {k: res[k] for k in _BRIEF if k in res}
    emit(out, as_json, _eval_text)


def _analysis_text(r: dict) -> str:
    gt, pred = r["gt"], r["pred"]
    lines = [
        f"{r['version']['name']} (version {r['version']['id']}): {r['images']} images, "
        f"{r['storage_bytes'] / 1e6:.1f} MB",
        f"  gt: {gt['boxes']} boxes, {gt['avg_boxes_per_image']:.2f} per image, {gt['positive_images']} images "
        f"with boxes ({gt['positive_share']:.0%}), {gt['negative_images']} without",
    ]
    if pred["boxes"]:
        lines.append(f"  pred: {pred['boxes']} boxes, {pred['avg_boxes_per_image']:.2f} per image")
    for name, c in gt["per_class"].items():
        lines.append(f"  {name:<20} {c['boxes']:>7} boxes in {c['images']:>6} images ({c['share']:.1%})")
    for name in ("image_mb", "quality"):
        h = r["image_histograms"][name]
        lines.append(f"  {name}: " + ", ".join(f"{lab}: {n}" for lab, n in zip(h["labels"], h["counts"],
                                                                               strict=True) if n))
    lines += [f"  warning: {w['message']}" for w in r["warnings"]]
    return "\n".join(lines)


@dataset.command("analyze")
@click.argument("version_id", type=int)
@click.option("--refresh", is_flag=True, help="Compute again instead of reading the cache.")
@json_option
@pass_cli
def dataset_analyze(cli: CliContext, version_id: int, refresh: bool, as_json: bool) -> None:
    """Totals, histograms (YMIR buckets) and class warnings of a dataset version."""
    from hub import analysis

    emit(analysis.analyze(cli.database, version_id, refresh=refresh, assets_dir=cli.settings.assets_dir,
                          asset_store=cli.settings.asset_store), as_json,
         _analysis_text)


COMMANDS = [evaluate]
