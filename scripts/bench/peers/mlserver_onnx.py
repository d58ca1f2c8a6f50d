"""An MLServer custom runtime serving an ONNX model with onnxruntime (the peer of ``agent_http.py``).

Runs inside ``.venvs/mlserver`` (MLServer's own pins), never ``.venv``. MLServer has no ONNX runtime
of its own, so this is the custom runtime its docs describe: an ``MLModel`` subclass whose ``load``
opens the file named by ``parameters.uri`` and whose ``predict`` decodes each request input with
``NumpyCodec`` and encodes each output the same way. The onnxruntime session is built as the agent
builds it (``detkit.runtime.onnxruntime``): ``parameters.extra.threads`` intra-op threads (0: its
default), no spinning, all graph optimisations (``ort_session.py``). The model settings (``model-settings.json``) are
written by ``scripts/bench/peers/servers.py``.
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri
from ort_session import session


class OnnxModel(MLModel):
    """``implementation: mlserver_onnx.OnnxModel`` in ``model-settings.json``."""

    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        self._sess = session(await get_model_uri(self.settings), int(extra.get("threads", 0)))
        self._names = [o.name for o in self._sess.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {inp.name: self.decode(inp, default_codec=NumpyCodec) for inp in payload.inputs}
        wanted = [o.name for o in payload.outputs] if payload.outputs else self._names
        arrays = self._sess.run(wanted, feeds)
        return InferenceResponse(
            model_name=self.name, model_version=self.version, id=payload.id,
            outputs=[NumpyCodec.encode_output(name, arr) for name, arr in zip(wanted, arrays, strict=True)],
        )
