"""Agent test helpers: tiny real ONNX models (detector and plain), model packages, sample images and
an artifact server standing in for the hub."""

from __future__ import annotations

import hashlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared fixture modules
from fixtures_mqtt import free_port, wait_port  # noqa: E402

CLASSES = ["circle", "square", "triangle"]
INPUT_SIZE = 32


def make_detector_onnx(path: Path, *, nan: bool = False, spec: bool = True, scale: float = 1.0,
                       pad_bytes: int = 0) -> Path:
    """A CenterNet-shaped detector: images (N,3,32,32) -> heatmap (N,3,8,8), distances (N,4,8,8).

    Average-pool by the stride, then 1x1 convs: sigmoid for the heatmap, ``|x| * 6 + 2`` for the
    distances. ``nan`` makes the heatmap NaN (a model that loads but fails the health check);
    ``pad_bytes`` adds an unused initializer to make the file that much bigger (slow downloads).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from detkit.manifest import METADATA_KEY, ModelSpec

    rng = np.random.default_rng(0)
    w_heat = (rng.normal(0, 2.0, (3, 3, 1, 1)) * scale).astype(np.float32)
    w_dist = rng.normal(0, 1.0, (4, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Conv", ["pooled", "w_heat"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["heat0"]),
        helper.make_node("Conv", ["pooled", "w_dist"], ["d0"]),
        helper.make_node("Abs", ["d0"], ["d1"]),
        helper.make_node("Mul", ["d1", "six"], ["d2"]),
        helper.make_node("Add", ["d2", "two"], ["distances"]),
    ]
    inits = [numpy_helper.from_array(w_heat, "w_heat"), numpy_helper.from_array(w_dist, "w_dist"),
             numpy_helper.from_array(np.array(6.0, np.float32), "six"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    if pad_bytes:
        inits.append(numpy_helper.from_array(rng.random(pad_bytes // 4, dtype=np.float32), "pad"))
    if nan:
        nodes += [helper.make_node("Sqrt", ["minus_one"], ["nan"]), helper.make_node("Mul", ["heat0", "nan"], ["heatmap"])]
        inits.append(numpy_helper.from_array(np.array(-1.0, np.float32), "minus_one"))
    else:
        nodes.append(helper.make_node("Identity", ["heat0"], ["heatmap"]))
    graph = helper.make_graph(
        nodes, "tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, ["N", 3, INPUT_SIZE // 4, INPUT_SIZE // 4]),
         helper.make_tensor_value_info("distances", TensorProto.FLOAT, ["N", 4, INPUT_SIZE // 4, INPUT_SIZE // 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if spec:
        s = ModelSpec(class_names=CLASSES, input_size=INPUT_SIZE, stride=4)
        helper.set_model_props(model, {METADATA_KEY: s.to_json()})
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_plain_onnx(path: Path) -> Path:
    """No detector metadata: ``x`` FP32 (-1, 4) -> ``y = 2x + 1`` FP32 and ``s = sum(x, axis=1)``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["x2"]), helper.make_node("Add", ["x2", "one"], ["y"]),
         helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0)],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch"])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.array(1.0, np.float32), "one"),
         numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_package_zip(folder: Path, out: Path, *, version: str = "1", nan: bool = False, scale: float = 1.0) -> Path:
    """A model package zip (manifest + model.onnx) built with ``detkit.package``."""
    from detkit.manifest import ModelSpec
    from detkit.package import pack, write_package

    folder.mkdir(parents=True, exist_ok=True)
    make_detector_onnx(folder / "model.onnx", nan=nan, scale=scale)
    write_package(folder, name="tiny", version=version,
                  spec=ModelSpec(class_names=CLASSES, input_size=INPUT_SIZE, stride=4), model="model.onnx")
    return pack(folder, out)


def sample_jpeg(seed: int = 0, w: int = 64, h: int = 48) -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


class ArtifactServer:
    """A tiny hub stand-in: ``GET /api/v1/artifacts/{sha256}`` with Range, token check, captures sink.

    ``throttle`` (bytes/s) slows downloads so tests can kill an agent mid-download.
    """

    def __init__(self, token: str = "device-token"):
        self.token = token
        self.blobs: dict[str, bytes] = {}
        self.captures: list[dict] = []
        self.range_requests: list[str] = []
        self.throttle: float = 0.0
        self.fail_captures = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _auth(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self.send_response(401)
                    self.end_headers()
                    return False
                return True

            def do_GET(self):
                if not self._auth():
                    return
                sha = self.path.rsplit("/", 1)[-1]
                blob = server.blobs.get(sha)
                if blob is None or not self.path.startswith("/api/v1/artifacts/"):
                    self.send_response(404)
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    server.range_requests.append(rng)
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(blob) - start))
                self.end_headers()
                view = memoryview(blob)[start:]
                step = 4096
                try:
                    for i in range(0, len(view), step):
                        self.wfile.write(view[i: i + step])
                        if server.throttle:
                            import time

                            time.sleep(step / server.throttle)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                if not self._auth():
                    return
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                if server.fail_captures:
                    self.send_response(503)
                    self.end_headers()
                    return
                server.captures.append({"path": self.path, "type": self.headers.get("Content-Type"), "body": body})
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, data: bytes) -> dict:
        """Publish bytes; returns the deployment fields (sha256, size, url)."""
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return {"sha256": sha, "size": len(data), "url": f"{self.url}/api/v1/artifacts/{sha}"}

    def start(self) -> ArtifactServer:
        self.thread.start()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


