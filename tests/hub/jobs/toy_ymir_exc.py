"""A toy executor written with the ymir-exc SDK from PyPI (as third-party images are)."""

import os

from ymir_exc import dataset_reader, env, monitor, result_writer, settings

if os.environ.get("YMIR_IN_DIR"):  # under the local backend the hub says where /in is
    settings.DEFAULT_ENV_FILE_PATH = os.path.join(os.environ["YMIR_IN_DIR"], "env.yaml")

cfg = env.get_current_env()
monitor.write_monitor_logger(0.1)
if cfg.run_training:
    items = list(dataset_reader.item_paths(dataset_reader.DatasetType.TRAINING))
    os.makedirs(cfg.output.models_dir, exist_ok=True)
    with open(os.path.join(cfg.output.models_dir, "sdk.weights"), "w") as f:
        f.write(f"{len(items)} items\n")
    result_writer.write_training_result(["sdk.weights"], mAP=0.77, classAPs={"circle": 0.77})
if cfg.run_mining:
    items = [a for a, _ in dataset_reader.item_paths(dataset_reader.DatasetType.CANDIDATE)]
    result_writer.write_mining_result([(a, float(i)) for i, a in enumerate(items)])
if cfg.run_infer:
    items = [a for a, _ in dataset_reader.item_paths(dataset_reader.DatasetType.CANDIDATE)]
    box = result_writer.Box(x=1, y=2, w=3, h=4)
    result_writer.write_infer_result({a: [result_writer.Annotation(class_name="square", score=0.5, box=box)]
                                      for a in items})
monitor.write_monitor_logger(1.0)
