"""A KServe custom predictor serving an ONNX model with onnxruntime (a peer of ``agent_http.py``).

Runs inside ``.venvs/kserve`` (KServe's own pins), never ``.venv``:

    .venvs/kserve/bin/python scripts/bench/peers/kserve_onnx.py --model_name bench --onnx m.onnx \
        --threads 1 --http_port 8080 --grpc_port 8081

The custom model is the one KServe's docs describe for the v2 protocol: a ``kserve.Model`` whose
``predict`` takes an ``InferRequest`` (inputs decoded with ``as_numpy``, binary tensor data
included) and returns an ``InferResponse`` of ``InferOutput`` tensors, binary where the request
asked for it. KServe's own flags (``--http_port``, ``--workers``, ...) pass through to
``kserve.ModelServer``. The onnxruntime session is built as the agent's (``ort_session.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import kserve
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.utils.numpy_codec import from_np_dtype

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ort_session import session  # noqa: E402  (this folder)


class OnnxModel(Model):
    """One ONNX file behind KServe's v2 (Open Inference Protocol) REST and gRPC endpoints."""

    def __init__(self, name: str, path: str, threads: int):
        super().__init__(name)
        self.path, self.threads = path, threads
        self.load()

    def load(self) -> bool:
        self._sess = session(self.path, self.threads)
        self._names = [o.name for o in self._sess.get_outputs()]
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        feeds = {inp.name: inp.as_numpy() for inp in payload.inputs}
        wanted = [o.name for o in payload.request_outputs] if payload.request_outputs else self._names
        arrays = self._sess.run(wanted, feeds)
        outputs = []
        for n, a in zip(wanted, arrays, strict=True):
            out = InferOutput(name=n, shape=list(a.shape), datatype=from_np_dtype(a.dtype))
            # raw bytes, as KServe's docs set them: to_rest() re-encodes as JSON where the client asked
            # for it; passing the array as data= trips KServe 0.21's to_grpc (ndarray truth value)
            out.set_data_from_numpy(a, binary_data=True)
            outputs.append(out)
        return InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=outputs,
                             use_binary_outputs=payload.use_binary_outputs, requested_outputs=payload.request_outputs)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser], description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", required=True, help="the ONNX file to serve")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    args, _ = parser.parse_known_args()
    ModelServer().start([OnnxModel(args.model_name, args.onnx, args.threads)])


if __name__ == "__main__":
    main()
