"""HTTP inference: the Open Inference Protocol (KServe v2 REST) plus ``/v1/detect`` and ``/v1/models``.

Built by :func:`create_app` around a :class:`agent.models.ModelRegistry` (no module-level app).
OIP routes answer errors as ``{"error": message}`` (what the protocol and its clients expect);
``/v1`` routes as ``{"error": message, "code": code}``. Served with waitress by :func:`serve`.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify, request

from agent import __version__
from agent.metrics import InferStats, Stats
from agent.models import ModelRegistry, ServedModel
from agent.oip import HEADER, encode_infer_response, parse_infer_request
from detkit import scoring
from detkit.errors import BadInput, Unauthorized, YmirError

log = logging.getLogger(__name__)
EXTENSIONS = ["binary_tensor_data", "model_repository_health", "statistics"]
DetectObserver = Callable[[ServedModel, bytes, dict], None]
MAX_BODY = 64 * 1024 * 1024


def _param(name: str, kind: type, default: Any, lo: float, hi: float) -> Any:
    raw = request.values.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise BadInput(f"{name}: expected a {kind.__name__}, got {raw!r}") from None
    if not (lo <= value <= hi) or (isinstance(value, float) and not math.isfinite(value)):
        raise BadInput(f"{name}: {value} is outside [{lo}, {hi}]")
    return value


def _image_bytes() -> bytes:
    if request.files:
        f = request.files.get("image") or next(iter(request.files.values()))
        data = f.read()
    else:
        data = request.get_data(cache=False)
    if not data:
        raise BadInput("no image: send multipart field 'image' or the image bytes as the body")
    return data


def detect_payload(model: ServedModel, image: bytes, conf: float, iou: float, max_det: int,
                   mining_conf: float | None) -> tuple[dict, float]:
    """Run ``/v1/detect`` on one image: boxes >= ``conf`` plus uncertainty scores.

    Detection runs at ``min(conf, mining_conf)`` so boxes just below the threshold count in the
    scores (greedy NMS keeps the same boxes above ``conf`` either way); ``mining_conf`` None (no
    mining, as in ``ymir-agent serve``) scores the returned boxes only. Returns (payload, seconds).
    """
    t0 = time.perf_counter()
    low = conf if mining_conf is None else min(conf, mining_conf)
    det = model.detector.detect(image, conf=low, iou=iou, max_det=max_det)[0]
    elapsed = time.perf_counter() - t0
    scores = scoring.image_scores(det.scores, threshold=conf)
    payload = det.to_json()
    keep = det.scores >= conf
    payload["detections"] = [d for d, k in zip(payload["detections"], keep.tolist(), strict=True) if k]
    payload.update(model=model.name, version=model.version, sha256=model.sha256, scores=scores,
                   latency_ms=round(elapsed * 1000, 3), conf=conf, iou=iou, max_det=max_det)
    return payload, elapsed


def create_app(
    registry: ModelRegistry,
    *,
    token: str = "",
    stats: Stats | None = None,
    on_detect: DetectObserver | None = None,
    mining_conf: float | None = None,
    status: Callable[[], dict] | None = None,
) -> Flask:
    """The inference app. ``token``: bearer token required by every route but ``/v2/health/*``.

    ``on_detect(model, image_bytes, payload)`` is called after each successful ``/v1/detect``
    (edge mining, prediction uplink); its errors are logged, never returned to the client.
    """
    app = Flask("agent.server")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    stats = stats or Stats()
    timings = InferStats()
    app.extensions["ymir_agent"] = {"registry": registry, "stats": stats, "timings": timings}

    def oip_error(exc: Exception) -> Response:
        status_code = exc.status if isinstance(exc, YmirError) else 500
        msg = exc.message if isinstance(exc, YmirError) else "internal error"
        if status_code >= 500 and not isinstance(exc, YmirError):
            log.exception("inference failed")
        resp = jsonify({"error": msg})
        resp.status_code = status_code
        return resp

    @app.errorhandler(YmirError)
    def _ymir(exc: YmirError):
        if request.path.startswith("/v2"):
            return oip_error(exc)
        return jsonify(exc.to_json()), exc.status

    @app.errorhandler(413)
    def _too_large(_exc):
        return jsonify({"error": f"request body over {MAX_BODY} bytes", "code": "too_large"}), 413

    @app.errorhandler(404)
    def _nf(_exc):
        return jsonify({"error": f"no route {request.path}"}), 404

    @app.errorhandler(405)
    def _na(_exc):
        return jsonify({"error": f"method {request.method} not allowed on {request.path}"}), 405

    @app.before_request
    def _auth():
        if not token or request.path.startswith("/v2/health"):
            return None
        given = request.headers.get("Authorization", "")
        if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())):
            raise Unauthorized("missing or wrong bearer token")
        return None

    # ---- Open Inference Protocol ----------------------------------------------------------
    @app.get("/v2/health/live")
    def live():
        return jsonify({"live": True})

    @app.get("/v2/health/ready")
    def ready():
        ok = registry.ready
        return jsonify({"ready": ok}), 200 if ok else 503

    @app.get("/v2")
    def server_metadata():
        return jsonify({"name": "ymir-agent", "version": __version__, "extensions": EXTENSIONS})

    @app.get("/v2/models/<name>")
    @app.get("/v2/models/<name>/versions/<version>")
    def model_metadata(name: str, version: str | None = None):
        return jsonify(registry.get(name, version).metadata())

    @app.get("/v2/models/<name>/ready")
    @app.get("/v2/models/<name>/versions/<version>/ready")
    def model_ready(name: str, version: str | None = None):
        model = registry.get(name, version)
        return jsonify({"name": name, "ready": model.enabled}), 200 if model.enabled else 503

    @app.get("/v2/models/<name>/config")
    @app.get("/v2/models/<name>/versions/<version>/config")
    def model_config(name: str, version: str | None = None):
        model = registry.get(name, version)
        return jsonify({"name": name, "platform": model.metadata()["platform"], "max_batch_size": 0,
                        "input": model.detector.inputs, "output": model.detector.outputs})

    @app.get("/v2/models/<name>/stats")
    @app.get("/v2/models/<name>/versions/<version>/stats")
    def model_stats(name: str, version: str | None = None):
        model = registry.get(name, version)
        return jsonify({"model_stats": [timings.report(name, model.version)]})

    @app.post("/v2/models/<name>/infer")
    @app.post("/v2/models/<name>/versions/<version>/infer")
    def infer(name: str, version: str | None = None):
        t0 = time.perf_counter_ns()
        body, headers = run_infer(registry, stats, name, version, request.get_data(cache=False),
                                  request.headers.get(HEADER), request.headers.get("Content-Encoding"),
                                  timings=timings, t0=t0)
        return Response(body, status=200, headers=headers)

    # ---- detector routes ------------------------------------------------------------------
    @app.get("/v1/models")
    def list_models():
        return jsonify({"models": [m.describe() for m in registry.all()],
                        **({"status": status()} if status else {})})

    @app.post("/v1/detect")
    def detect():
        name = request.values.get("model")
        model = registry.ready_model(name) if name else registry.default()
        registry.ready_model(model.name)  # Unavailable (503) when disabled
        if not model.is_detector:
            raise BadInput(f"model {model.name!r} has no detector metadata; use /v2/models/{model.name}/infer")
        s = model.settings
        conf = _param("conf", float, float(s.get("conf", 0.25)), 0.0, 1.0)
        iou = _param("iou", float, float(s.get("iou", 0.5)), 1e-6, 1.0)
        max_det = _param("max_det", int, int(s.get("max_det", 100)), 1, 10000)
        image = _image_bytes()
        try:
            payload, elapsed = detect_payload(model, image, conf, iou, max_det, mining_conf)
        except YmirError:
            stats.observe(0.0, ok=False)
            raise
        stats.observe(elapsed)
        if on_detect is not None:
            try:
                on_detect(model, image, payload)
            except Exception:  # uplink trouble must never fail an inference
                log.exception("prediction uplink failed")
        return jsonify(payload)

    app.wsgi_app = _FastInfer(app.wsgi_app, registry, stats, token, timings)
    return app


def run_infer(registry: ModelRegistry, stats: Stats, name: str, version: str | None, body: bytes,
              header_length: str | None, encoding: str | None, *, timings: InferStats | None = None,
              t0: int | None = None) -> tuple[bytes, dict[str, str]]:
    """One OIP ``/infer``: parse, run, encode; raises :class:`YmirError` kinds for the caller to render.

    ``timings`` gets the server-side time from ``t0`` (``perf_counter_ns`` when the body was in
    hand; now if None) to the encoded answer, and its parse / run / encode parts.
    """
    t0 = time.perf_counter_ns() if t0 is None else t0
    model = registry.ready_model(name, version)
    try:
        if encoding not in (None, "", "identity"):
            raise BadInput("compressed requests are not supported; send identity encoding")
        req = parse_infer_request(body, header_length)
        t1 = time.perf_counter_ns()
        try:
            outputs = model.detector.run(req.inputs)
        except YmirError:
            stats.observe(0.0, ok=False)
            raise
        except Exception as exc:  # a runtime error on valid-looking input: report it, keep serving
            stats.observe(0.0, ok=False)
            log.warning("model %s failed on a request: %s", name, exc)
            raise BadInput(f"model {name!r} failed on this input: {exc}") from None
        t2 = time.perf_counter_ns()
        stats.observe((t2 - t1) / 1e9)
        answer = encode_infer_response(name, model.version, outputs, req)
    except YmirError:
        if timings is not None:
            timings.fail(name, model.version, time.perf_counter_ns() - t0)
        raise
    if timings is not None:
        t3 = time.perf_counter_ns()
        timings.observe(name, model.version, t3 - t0, t1 - t0, t2 - t1, t3 - t2)
    return answer


_INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")


class _FastInfer:
    """WSGI middleware answering ``POST .../infer`` with a Content-Length without Flask.

    Inference requests are the hot path: routing, request objects and response objects cost
    about 0.4 ms a call, a tenth of a small detector's run. Everything else (and chunked
    bodies) goes to the Flask app; both call :func:`run_infer`, so behaviour is the same.
    """

    def __init__(self, inner, registry: ModelRegistry, stats: Stats, token: str, timings: InferStats):
        self.inner, self.registry, self.stats, self.timings = inner, registry, stats, timings
        self.auth = f"Bearer {token}".encode() if token else None

    def __call__(self, environ, start_response):
        match = _INFER_PATH.match(environ.get("PATH_INFO", ""))
        length = environ.get("CONTENT_LENGTH")
        if match is None or environ.get("REQUEST_METHOD") != "POST" or not length:
            return self.inner(environ, start_response)
        try:
            if self.auth is not None and not hmac.compare_digest(
                    environ.get("HTTP_AUTHORIZATION", "").encode(), self.auth):
                raise Unauthorized("missing or wrong bearer token")
            n = int(length)
            if n > MAX_BODY:
                raise YmirError(f"request body over {MAX_BODY} bytes", code="too_large", status=413)
            t0 = time.perf_counter_ns()  # waitress has the whole body in memory before it calls us
            body = environ["wsgi.input"].read(n)
            out, headers = run_infer(self.registry, self.stats, match.group(1), match.group(2), body,
                                     environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH"),
                                     environ.get("HTTP_CONTENT_ENCODING"), timings=self.timings, t0=t0)
            status = "200 OK"
        except (YmirError, ValueError) as exc:
            err = exc if isinstance(exc, YmirError) else BadInput(f"bad Content-Length {length!r}")
            out = json.dumps({"error": err.message}).encode()
            headers = {"Content-Type": "application/json"}
            status = f"{err.status} {HTTPStatus(err.status).phrase}"
        except Exception:
            log.exception("inference failed")
            out, headers, status = b'{"error": "internal error"}', {"Content-Type": "application/json"}, "500 Internal Server Error"
        headers["Content-Length"] = str(len(out))
        start_response(status, list(headers.items()))
        return [out]


class HttpServer:
    """waitress in a background thread (the agent daemon) or the foreground (``serve``)."""

    def __init__(self, app: Flask, host: str, port: int, threads: int = 4):
        from waitress.server import create_server

        # Tensors are big: read them in 256 KiB gulps and keep bodies up to MAX_BODY in memory
        # (waitress' defaults, 8 KiB reads and spooling bodies over 512 KiB to a temp file, cost
        # more than the inference of a small detector).
        self._server = create_server(app, host=host, port=port, threads=threads, ident="ymir-agent",
                                     channel_timeout=30, connection_limit=200, recv_bytes=256 * 1024,
                                     inbuf_overflow=MAX_BODY, outbuf_overflow=MAX_BODY,
                                     max_request_body_size=MAX_BODY, asyncore_use_poll=True)
        self.host, self.port = host, self._server.effective_port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.run, name="agent-http", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        self._server.run()

    def stop(self) -> None:
        self._server.close()
        if self._thread:
            self._thread.join(timeout=5)

