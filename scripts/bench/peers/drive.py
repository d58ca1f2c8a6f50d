"""One tritonclient client process for ``agent_http.py``: the same calls against any OIP server.

    PY scripts/bench/peers/drive.py --protocol http|grpc --url 127.0.0.1:PORT --size 256 [--json]

``http``: ``tritonclient.http`` with binary tensors in and out (``--json``: tensors as JSON, for a
server without the binary tensor extension). ``grpc``: ``tritonclient.grpc``, whose tensors are
raw bytes (``raw_input_contents``). Reads commands on stdin, answers one JSON line each:

* ``check PATH``  one call; saves the outputs to ``PATH`` (npz) for the bit-for-bit comparison;
* ``run N``       N calls one after another: ``{"ms": [...], "t0": .., "t1": .., "cpu_s": ..}``
                  (``time.monotonic`` is one clock for every process on the machine, so the
                  throughput of concurrent drivers is their calls over max(t1) - min(t0));
* ``quit``.

Imports numpy and tritonclient only: it runs from ``.venv`` or from a peer's venv alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

OUTPUTS = ("heatmap", "distances")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", choices=["http", "grpc"], required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--json", action="store_true", help="JSON tensors (http only)")
    ap.add_argument("--model", default="bench")
    args = ap.parse_args()
    x = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)  # as agent_http.py
    if args.protocol == "grpc":
        import tritonclient.grpc as tc

        client = tc.InferenceServerClient(url=args.url)
        inp = tc.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        outs = [tc.InferRequestedOutput(n) for n in OUTPUTS]
    else:
        import tritonclient.http as tc

        client = tc.InferenceServerClient(url=args.url, network_timeout=120, connection_timeout=120)
        inp = tc.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=not args.json)
        outs = [tc.InferRequestedOutput(n, binary_data=not args.json) for n in OUTPUTS]

    def call():
        res = client.infer(args.model, [inp], outputs=outs)
        return {n: res.as_numpy(n) for n in OUTPUTS}

    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "check":
            np.savez(arg, **call())
            out = {"ok": True}
        elif cmd == "run":
            ms = []
            c0, t0 = time.process_time(), time.monotonic()
            for _ in range(int(arg)):
                s = time.perf_counter()
                call()
                ms.append((time.perf_counter() - s) * 1000)
            out = {"ms": ms, "t0": t0, "t1": time.monotonic(), "cpu_s": time.process_time() - c0}
        elif cmd == "quit":
            break
        else:
            out = {"error": f"unknown command {cmd!r}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    client.close()


if __name__ == "__main__":
    main()
