"""Active-learning lift: test mAP after each iteration round per mining algorithm, over seeds, at equal label
budgets; and what mining costs over plain inference on the same images.

For each seed: the scenario of :mod:`detkit.al_scenario` (an initial training set with few triangles, a
pool full of them, balanced validation and test sets) in a fresh workspace; one initial model (round 0),
shared by every algorithm; then, per algorithm, its own project running ``--rounds`` rounds of the hub's
iteration workflow (prepare -> mine top-k -> label from the synthetic truth -> merge -> fine-tune), the
same top-k every round, so every algorithm gets the same label budget. Prints a table of test mAP50 per
round and the mean over seeds, and checks the goal: every uncertainty score beats random on the mean.

The cost part loads the seed-0 initial model in-process and times, over the pool: plain inference
(forward + decode) against inference + each score (single-pass scores must add <= 5 %; CALD runs extra
views, reported with its factor).

    .venv/bin/python scripts/bench/al_lift.py                     # 3 seeds x random, entropy, aldd, cald
    .venv/bin/python scripts/bench/al_lift.py --seeds 0 --rounds 1 --methods random aldd   # quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench.al_lift")
METHODS = ["random", "entropy", "aldd", "cald"]


class Hub:
    """A workspace with a job runner thread, driven through the hub's own functions (no HTTP)."""

    def __init__(self, home: Path):
        from hub import auth
        from hub.config import load_settings
        from hub.jobs.setup import build_runner
        from hub.store.workspace import Workspace
        from hub.training import register_builtin_image

        self.settings = load_settings(home, env={}, testing=True, secret_key="bench")
        self.ws = Workspace.create(self.settings)
        auth.add_user(self.ws.database, "admin", "bench-pass-123", "admin")
        register_builtin_image(self.ws.database)
        self.runner = build_runner(self.settings, self.ws.database, poll_interval=0.2)
        self.runner.start()

    def close(self) -> None:
        self.runner.stop()
        self.ws.close()

    def import_zip(self, project: str, path: Path, name: str) -> int:
        from hub.datasets.service import run_import, start_import

        version = start_import(self.ws, project, kind="zip", value=str(path), name=name)
        run_import(self.ws, version["id"])
        return version["id"]

    def wait_step(self, project: str, step: str, timeout: float = 3600) -> dict:
        from hub import iterations

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = iterations.show(self.ws, project)
            rnd = data["rounds"][-1]
            row = next(s for s in rnd["steps"] if s["step"] == step)
            if row["state"] in ("done", "failed", "skipped"):
                if row["state"] == "failed":
                    raise RuntimeError(f"{project}: step {step} failed: {row['error']}")
                return row
            time.sleep(0.5)
        raise TimeoutError(f"{project}: step {step} not done after {timeout}s")

    def run(self, project: str, step: str, params: dict | None = None) -> dict:
        from hub import iterations

        iterations.run_step(self.ws, project, step, params or {})
        return self.wait_step(project, step)


def _oracle(hub: Hub, task_id: int, truth: dict) -> None:
    from hub.labeling import tasks

    task = tasks.get_task(hub.ws.database, task_id)
    for row in tasks.task_images(hub.ws.database, task_id):
        boxes = [dict(b) for b in truth[row["sha1"]]["boxes"]]
        tasks.save_labels(hub.ws, task_id, row["sha1"], boxes, done=True)
    tasks.finish_task(hub.ws, task["id"])


def run_seed(seed: int, methods: list[str], rounds: int, topk: int, config: dict, work: Path,
             pool_weights: tuple[float, float, float] | None = None, class_balanced: bool = False,
             mining_config: dict | None = None) -> dict:
    from detkit.al_scenario import write_scenario
    from hub import iterations
    from hub.store import projects as projects_store

    hub = Hub(work / f"seed{seed}" / "ws")
    try:
        paths = write_scenario(work / f"seed{seed}" / "scenario", seed=seed,
                               weights={"pool": pool_weights} if pool_weights else None)
        truth = json.loads(paths["pool_truth"].read_text())
        ids: dict[str, dict[str, int]] = {}
        for project in ["initial", *methods]:
            projects_store.create_project(hub.ws.database, project, targets=["circle", "square", "triangle"],
                                          add_missing=True)
            ids[project] = {n: hub.import_zip(project, paths[n], n) for n in ("train", "pool", "val", "test")}
        sets = lambda p: dict(training_version_id=ids[p]["train"], mining_version_id=ids[p]["pool"],  # noqa: E731
                              validation_version_id=ids[p]["val"], test_version_id=ids[p]["test"])
        t0 = time.perf_counter()
        iterations.start(hub.ws, "initial", **sets("initial"), params={"training": {"config": config}})
        row = hub.run("initial", "training")
        initial_model, initial_map = row["output"]["model_id"], row["output"]["test_map50"]
        log.info("seed %d: initial model %s test mAP50 %.3f (%.0f s)", seed, initial_model, initial_map,
                 time.perf_counter() - t0)
        out = {"initial_map50": initial_map, "initial_model_id": initial_model, "methods": {}}
        for method in methods:
            iterations.start(hub.ws, method, **sets(method), initial_model_id=initial_model,
                             params={"training": {"config": config},
                                     "mining": {"algorithm": method, "topk": topk,
                                                "class_balanced": class_balanced and method != "random",
                                                "config": mining_config or {}}})
            hub.run(method, "training")  # round 0: tests the shared initial model only
            maps = []
            for _ in range(rounds):
                iterations.next_round(hub.ws, method)
                hub.run(method, "prepare_mining")
                hub.run(method, "mining")
                iterations.run_step(hub.ws, method, "label")
                label = next(s for s in iterations.show(hub.ws, method)["rounds"][-1]["steps"]
                             if s["step"] == "label")
                _oracle(hub, label["task_id"], truth)
                hub.wait_step(method, "label")
                hub.run(method, "merge")
                maps.append(hub.run(method, "training")["output"]["test_map50"])
            out["methods"][method] = maps
            log.info("seed %d %-8s test mAP50 per round %s", seed, method, [round(m, 3) for m in maps])
        return out
    finally:
        hub.close()


def mining_cost(model_path: Path, images: list[Path], methods: list[str], batch: int = 8) -> dict:
    """Seconds over ``images`` for plain inference and for inference + each score, in-process."""
    from detkit import scoring
    from detkit.runtime.prepost import decode_centernet
    from executor.data import load_images
    from executor.predict import load_model, pick_device, raw_outputs

    device = pick_device("cpu", 0)
    model, spec = load_model(model_path, device)
    batches = [load_images(images[i:i + batch], spec.input_size)[0] for i in range(0, len(images), batch)]

    def infer(score=None) -> tuple[float, float]:
        """(forward + decode seconds, scoring seconds) over all batches, timed separately per batch so
        that machine-load drift between runs does not land on one side of the ratio."""
        t_inf = t_score = 0.0
        for imgs in batches:
            t0 = time.perf_counter()
            heat, dist = raw_outputs(model, imgs, spec, device)
            dets = decode_centernet(heat, dist, spec.stride, 0.05, 100)
            t1 = time.perf_counter()
            if score is not None:
                score(imgs, heat, dets)
            t_inf += t1 - t0
            t_score += time.perf_counter() - t1
        return t_inf, t_score

    def scorer(method):
        def detect(views):
            return decode_centernet(*raw_outputs(model, views, spec, device), spec.stride, 0.05, 100)

        def score(imgs, heat, dets):
            return scoring.score_batch(method, dets=dets, heatmap=heat, images=imgs, detect=detect,
                                       keys=[str(i) for i in range(len(imgs))])

        return score

    infer()  # warm-up
    base = min(infer()[0] for _ in range(3))
    out = {"images": len(images), "inference_s": base}
    for method in methods:
        runs = [infer(scorer(method)) for _ in range(3)]
        inf, sc = min(r[0] for r in runs), min(r[1] for r in runs)
        out[method] = {"seconds": inf + sc, "scoring_s": sc, "over_inference": sc / inf,
                       "extra_inferences": scoring.ALGORITHMS[method].extra_inferences}
    return out


def _print_cost(cost: dict, methods: list[str]) -> None:
    print(f"\nmining cost over plain inference on {cost['images']} images "
          f"(forward + decode {cost['inference_s']:.2f} s, batch 8; best of 3):")
    for m in methods:
        if m in cost:
            single = "single pass" if cost[m]["extra_inferences"] == 0 else f"{cost[m]['extra_inferences']} extra"
            print(f"  {m:<17} {cost[m]['seconds']:.2f} s  +{100 * cost[m]['over_inference']:5.1f} %  ({single})")
    singles = [m for m in methods if m in cost and cost[m]["extra_inferences"] == 0]
    worst = max((cost[m]["over_inference"] for m in singles), default=0.0)
    print(f"goal: single-pass scores cost <= 5 % over inference: {'met' if worst <= 0.05 else 'NOT met'} "
          f"(worst +{100 * worst:.1f} %)")


def _cost_from_zip(pt: Path, images_zip: Path, methods: list[str], limit: int = 200) -> dict:
    import zipfile

    folder = Path(tempfile.mkdtemp(prefix="al-cost-"))
    with zipfile.ZipFile(images_zip) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("images/"))[:limit]
        zf.extractall(folder, names)
    return mining_cost(pt, [folder / n for n in names], methods)


def _cost_on_seed(work: Path, seed: int, model_id: int, methods: list[str]) -> dict:
    """:func:`mining_cost` with the seed's initial model over the first 200 pool images."""
    import zipfile

    from hub.config import load_settings
    from hub.store import models as models_store
    from hub.store.workspace import Workspace

    ws = Workspace.open(load_settings(work / f"seed{seed}" / "ws", env={}, testing=True, secret_key="bench"))
    try:
        model = models_store.get_model(ws.database, model_id)
        stage = next(s for s in model["stages"] if s["name"] == model["best_stage"])
        folder = Path(ws.settings.home) / "models" / model["folder"]
        pt = next(folder / f for f in stage["files"] if f.endswith(".pt"))
    finally:
        ws.close()
    images = work / f"seed{seed}" / "pool-images"
    with zipfile.ZipFile(work / f"seed{seed}" / "scenario" / "pool.zip") as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("images/"))[:200]
        zf.extractall(images, names)
    return mining_cost(pt, [images / n for n in names], methods)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--topk", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--input-size", type=int, default=192)
    ap.add_argument("--pool-weights", type=float, nargs=3, default=None, metavar=("CIRCLE", "SQUARE", "TRIANGLE"),
                    help="The pool's class mix (default the scenario's 0.2 0.2 0.6; e.g. 0.45 0.45 0.1: triangles rare).")
    ap.add_argument("--class-balanced", action="store_true",
                    help="Uncertainty methods mine with the class-balanced re-ranking on top (random stays random).")
    ap.add_argument("--mining-conf", type=float, default=None,
                    help="The executor's conf_threshold while mining (default its 0.05): box scores see boxes above it.")
    ap.add_argument("--work", type=Path, default=None, help="Keep workspaces here (default: a temp folder).")
    ap.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    ap.add_argument("--skip-cost", action="store_true", help="Only the lift, not the mining cost.")
    ap.add_argument("--cost-only", nargs=2, type=Path, metavar=("MODEL_PT", "IMAGES_ZIP"),
                    help="Only the mining cost: a checkpoint of the built-in executor and a zip with images/.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("hub", "executor", "detkit"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.cost_only:
        cost = _cost_from_zip(args.cost_only[0], args.cost_only[1], [m for m in args.methods if m != "random"])
        _print_cost(cost, args.methods)
        if args.out:
            args.out.write_text(json.dumps({"cost": cost}, indent=2))
        return 0
    config = {"epochs": args.epochs, "input_size": args.input_size, "batch_size": 8, "save_period": 0, "seed": 0}
    work = args.work or Path(tempfile.mkdtemp(prefix="al-lift-"))
    results = {"config": config, "topk": args.topk, "rounds": args.rounds, "pool_weights": args.pool_weights,
               "class_balanced": args.class_balanced, "mining_conf": args.mining_conf, "seeds": {}}
    for seed in args.seeds:
        results["seeds"][seed] = run_seed(seed, args.methods, args.rounds, args.topk, config, work,
                                          tuple(args.pool_weights) if args.pool_weights else None,
                                          args.class_balanced,
                                          {"conf_threshold": args.mining_conf} if args.mining_conf is not None else None)

    print(f"\ntest mAP50 after each round (top-{args.topk} labeled per round; initial model shared per seed)")
    print(f"{'method':<10}" + "".join(f"{'seed ' + str(s):>22}" for s in args.seeds) + f"{'mean last':>12}")
    means = {}
    for m in args.methods:
        cells, lasts = [], []
        for s in args.seeds:
            r = results["seeds"][s]
            maps = [r["initial_map50"], *r["methods"][m]]
            cells.append(" > ".join(f"{x:.3f}" for x in maps))
            lasts.append(maps[-1])
        means[m] = statistics.fmean(lasts)
        print(f"{m:<10}" + "".join(f"{c:>22}" for c in cells) + f"{means[m]:>12.3f}")
    results["mean_last_map50"] = means
    per_round = {m: [statistics.fmean(results["seeds"][s]["methods"][m][r] for s in args.seeds)
                     for r in range(args.rounds)] for m in args.methods}
    results["mean_map50_per_round"] = per_round
    print("\nmean over seeds, per round:")
    for m in args.methods:
        print(f"{m:<10}" + "".join(f"{x:>10.3f}" for x in per_round[m]))
    if "random" in per_round:
        beats = {f"round {r + 1}": {m: per_round[m][r] > per_round["random"][r] for m in args.methods if m != "random"}
                 for r in range(args.rounds)}
        results["beats_random"] = beats
        for rnd, b in beats.items():
            print(f"goal after {rnd}: every uncertainty score beats random on the mean over seeds:",
                  "met" if all(b.values()) else f"NOT met ({', '.join(m for m, ok in b.items() if not ok)})")

    if not args.skip_cost:
        cost = _cost_on_seed(work, args.seeds[0], results["seeds"][args.seeds[0]]["initial_model_id"],
                             [m for m in args.methods if m != "random"])
        results["cost"] = cost
        _print_cost(cost, args.methods)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
