"""``ymir-convert``: quantize, convert, validate, package and benchmark detector models.

Every command takes ``--json`` (one JSON document on stdout); progress bars go to stderr. User
errors (bad file, missing SDK, unknown class) exit 2 with the message; a conversion rejected for
losing accuracy exits 1 after printing its figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
from pathlib import Path

import click

from detkit.errors import YmirError

log = logging.getLogger(__name__)


class _Bars:
    """Progress displays on stderr (detkit.progress), made on demand (``progress(desc, total) -> update``) and closed together."""

    def __init__(self):
        self._bars = []

    def __call__(self, desc: str, total: int):
        from detkit.progress import progress_bar

        bar = progress_bar(desc, total=total, unit="img")
        self._bars.append(bar)
        return bar.update

    def close(self):
        for bar in self._bars:
            bar.close()
        self._bars.clear()


_STDOUT: list = []  # the real stdout while a command body runs with stdout sent to stderr


def _emit(as_json: bool, data, text: str) -> None:
    out = _STDOUT[-1] if _STDOUT else sys.stdout
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str) if as_json else text, file=out)


def _run(fn):
    """Run a command body: YmirError -> message on stderr, exit 2.

    SDK chatter (NNCF's progress and log lines go to stdout) is sent to stderr so that stdout holds
    only the command's result.
    """
    bars = _Bars()
    _STDOUT.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return fn(bars)
    except YmirError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    finally:
        _STDOUT.pop()
        bars.close()


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
exists = click.Path(exists=True, path_type=Path)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """Convert ONNX detectors to int8 ONNX, OpenVINO IR and TensorRT; validate and package them."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("src", type=exists)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--calibration", required=True, type=exists, help="Folder or YMIR zip of calibration images.")
@click.option("--max-images", default=100, show_default=True, help="Calibration images used at most.")
@click.option("--activation", type=click.Choice(["uint8", "int8"]), default="uint8", show_default=True)
@click.option("--method", type=click.Choice(["minmax", "percentile"]), default="minmax", show_default=True)
@json_option
def quantize(src, out, calibration, max_images, activation, method, as_json):
    """onnxruntime static int8 (QDQ, per-channel) of SRC into OUT."""
    from converters.data import load_images
    from converters.quantize import quantize_onnx
    from detkit.package import sha256_file

    def body(bars):
        images = load_images(calibration, limit=max_images)
        path = quantize_onnx(src, out, images, max_images=max_images, activation_type=activation, method=method,
                             progress=bars("calibrate", len(images)))
        _emit(as_json, {"output": str(path), "sha256": sha256_file(path)}, str(path))

    _run(body)


@main.command()
@click.argument("src", type=exists)
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True)
@click.option("--calibration", type=exists, help="Folder or YMIR zip of images (int8 only).")
@click.option("--max-images", default=300, show_default=True, help="Calibration images used at most.")
@json_option
def openvino(src, out_dir, precision, calibration, max_images, as_json):
    """OpenVINO IR (model.xml + model.bin) of SRC in OUT_DIR."""
    from converters.data import load_images
    from converters.openvino import to_openvino

    def body(bars):
        images = load_images(calibration, limit=max_images) if calibration else None
        xml = to_openvino(src, out_dir, precision, images, max_images=max_images,
                          progress=bars("calibrate", len(images)) if images else None)
        _emit(as_json, {"output": str(xml), "precision": precision}, str(xml))

    _run(body)


@main.command()
@click.argument("src", type=exists)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--precision", type=click.Choice(["fp16", "int8"]), default="fp16", show_default=True,
              help="int8 needs a QDQ ONNX (from `ymir-convert quantize`).")
@click.option("--max-batch", default=8, show_default=True)
@click.option("--workspace-mb", default=1024, show_default=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Engine cache folder.")
@json_option
def tensorrt(src, out, precision, max_batch, workspace_mb, cache_dir, as_json):
    """TensorRT 10 engine of SRC into OUT (needs tensorrt + cuda-python and an NVIDIA GPU)."""
    from converters.tensorrt import to_tensorrt

    def body(bars):
        path = to_tensorrt(src, out, precision, max_batch=max_batch, workspace_mb=workspace_mb, cache_dir=cache_dir)
        _emit(as_json, {"output": str(path), "precision": precision}, str(path))

    _run(body)


@main.command()
@click.argument("src", type=exists)
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--target", required=True, help="A conversion target (see `ymir-convert targets`).")
@click.option("--calibration", type=exists, help="Calibration images (int8 targets).")
@click.option("--validation", type=exists, help="Annotated images (VOC) to measure accuracy and speed on.")
@click.option("--max-drop", default=2.0, show_default=True, help="Reject above this mAP@0.5 drop (points).")
@click.option("--max-calibration", default=100, show_default=True, help="Calibration images used at most.")
@click.option("--name", help="Package name (default: the source file's stem).")
@click.option("--version", "version_", default="1", show_default=True, help="Package version.")
@click.option("--device", default="cpu", show_default=True, help="Device the result is validated on.")
@click.option("--zip", "zip_path", type=click.Path(path_type=Path), help="Also pack the package into this zip.")
@json_option
def package(src, out_dir, target, calibration, validation, max_drop, max_calibration, name, version_, device,
            zip_path, as_json):
    """Convert SRC to TARGET, validate it against SRC and write a model package in OUT_DIR."""
    from converters.package import convert
    from detkit.package import pack

    def body(bars):
        manifest = convert(target, src, out_dir, calibration=calibration, validation=validation, max_drop=max_drop,
                           max_calibration=max_calibration, name=name, version=version_, device=device,
                           progress=bars)
        data = manifest.to_dict()
        if zip_path:
            data["archive"] = str(pack(out_dir, zip_path))
        acc = manifest.accuracy
        text = f"{out_dir}: {manifest.status}"
        if acc:
            text += (f" — mAP@0.5 {acc['mAP50']:.2f} ({acc['delta_mAP50']:+.2f}), mAP@.5:.95 {acc['mAP50_95']:.2f}"
                     f" ({acc['delta_mAP50_95']:+.2f}), p50 {manifest.speed['latency_ms_p50']:.2f} ms"
                     f" ({manifest.speed['speedup_vs_source']:.2f}x source)")
        if manifest.reason:
            text += f"\n{manifest.reason}"
        _emit(as_json, data, text)
        if manifest.status == "rejected":
            sys.exit(1)

    _run(body)


@main.command("eval")
@click.argument("model", type=exists)
@click.option("--data", required=True, type=exists, help="Annotated images (folder or YMIR zip).")
@click.option("--backend", help="Runtime backend (default: the package's, or by file type).")
@click.option("--device", default="cpu", show_default=True)
@json_option
def eval_(model, data, backend, device, as_json):
    """mAP@0.5 and mAP@.5:.95 of MODEL (file or package) on annotated images."""
    from converters.data import load_images
    from converters.validate import evaluate
    from detkit.runtime import load

    def body(bars):
        images = load_images(data, need_annotations=True)
        det = load(model, backend=backend, device=device)
        try:
            result = evaluate(det, images, bars("evaluate", len(images)))
        finally:
            det.close()
        result["backend"], result["model"] = det.backend, str(model)
        _emit(as_json, result, f"{model} [{det.backend}]: mAP@0.5 {result['mAP50']:.2f}  "
                               f"mAP@.5:.95 {result['mAP50_95']:.2f}  ({result['images']} images)")

    _run(body)


@main.command()
@click.argument("model", type=exists)
@click.option("--data", type=exists, help="Images to time on (default: 8 seeded synthetic scenes).")
@click.option("--backend", help="Runtime backend (default: the package's, or by file type).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--runs", default=100, show_default=True)
@click.option("--threads", default=0, show_default=True, help="CPU threads (0: the backend decides).")
@json_option
def bench(model, data, backend, device, runs, threads, as_json):
    """Batch-1 latency p50/p95 and images/s of MODEL."""
    from converters.data import load_images
    from converters.validate import measure_speed
    from detkit.runtime import load
    from detkit.synth import write_sample_zip

    def body(bars):
        with tempfile.TemporaryDirectory() as tmp:
            images = load_images(data or write_sample_zip(Path(tmp) / "scenes.zip", images=8), limit=16)
            config = {"threads": threads} if threads and (backend or "") != "tensorrt" else {}
            det = load(model, backend=backend, device=device, **config)
            try:
                result = measure_speed(det, images, runs=runs)
            finally:
                det.close()
        _emit(as_json, result, f"{model} [{result['backend']}]: p50 {result['latency_ms_p50']:.2f} ms  "
                               f"p95 {result['latency_ms_p95']:.2f} ms  {result['images_per_s']:.1f} img/s")

    _run(body)


@main.command()
@click.argument("package_path", type=exists)
@json_option
def verify(package_path, as_json):
    """Check every file's sha256 in a model package (folder or zip)."""
    from detkit.package import verify as verify_package

    def body(bars):
        manifest = verify_package(package_path)
        _emit(as_json, manifest.to_dict(), f"{package_path}: ok ({len(manifest.files)} files, {manifest.status})")

    _run(body)


@main.command()
@json_option
def targets(as_json):
    """List conversion targets and runtime backends, and whether each works here."""
    from converters.formats import TARGETS
    from detkit.runtime import available_backends

    backends = available_backends()
    rows = {k: {"backend": t.backend, "precision": t.precision, "calibration": t.needs_calibration,
                "description": t.description, "available": backends[t.backend][0]} for k, t in TARGETS.items()}
    data = {"targets": rows, "backends": {k: {"ok": ok, "reason": r} for k, (ok, r) in backends.items()}}
    lines = [f"{k:15} {v['backend']:12} {'ok ' if v['available'] else 'n/a'} {v['description']}" for k, v in rows.items()]
    lines += [f"backend {k}: {r}" for k, (ok, r) in backends.items()]
    _emit(as_json, data, "\n".join(lines))


if __name__ == "__main__":  # pragma: no cover
    main()
