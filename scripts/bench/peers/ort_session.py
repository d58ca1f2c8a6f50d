"""The onnxruntime session every peer server builds, with the agent's settings (``detkit.runtime.onnxruntime``).

Plain onnxruntime, importable from any of the peers' venvs.
"""

from __future__ import annotations

import onnxruntime as ort


def session(path: str, threads: int) -> ort.InferenceSession:
    """``threads`` intra-op threads (0: onnxruntime's default), no spinning, all graph optimisations, CPU."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
