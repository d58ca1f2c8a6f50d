"""The floor of the OIP path: tritonclient's own cost per call against a server that does no work.

    .venv/bin/python scripts/bench/oip_client_floor.py

Starts (in a child process) a bare socket server that reads each request (the detector's
1x3x256x256 FP32 input as a binary tensor, 786 KiB) and answers at once with a canned OIP response
of the detector's outputs (112 KiB, binary), then times ``tritonclient.http`` ``infer`` against it
exactly as ``scripts/bench/agent_http.py`` does. Whatever a server does, the OIP path cannot be
faster than this; compare it with 10 % of ``Detector.run`` (the issue's 1.10x goal).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import numpy as np

OUTPUTS = {"heatmap": (1, 3, 64, 64), "distances": (1, 4, 64, 64)}


def canned_response() -> bytes:
    arrays = {name: np.zeros(shape, np.float32) for name, shape in OUTPUTS.items()}
    header = json.dumps({"model_name": "bench", "outputs": [
        {"name": name, "datatype": "FP32", "shape": list(a.shape), "parameters": {"binary_data_size": a.nbytes}}
        for name, a in arrays.items()]}).encode()
    body = header + b"".join(a.tobytes() for a in arrays.values())
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(header), len(body)))
    return head + body


def serve() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, told to the parent
    sock.listen(1)
    print(sock.getsockname()[1], flush=True)
    conn, _ = sock.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reply, buf = canned_response(), b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(1 << 20)
            if not data:
                return
            buf += data
        head, rest = buf.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        while len(rest) < length:
            rest += conn.recv(1 << 20)
        buf = rest[length:]
        conn.sendall(reply)


def main() -> int:
    if sys.argv[1:] == ["--server"]:
        serve()
        return 0
    import tritonclient.http as httpclient

    server = subprocess.Popen([sys.executable, __file__, "--server"], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    inp = httpclient.InferInput("images", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    outs = [httpclient.InferRequestedOutput(name, binary_data=True) for name in OUTPUTS]
    for _ in range(50):
        client.infer("bench", [inp], outputs=outs).as_numpy("heatmap")
    times, c0 = [], time.process_time()
    for _ in range(500):
        t = time.perf_counter()
        client.infer("bench", [inp], outputs=outs).as_numpy("heatmap")
        times.append(time.perf_counter() - t)
    cpu = (time.process_time() - c0) / 500
    client.close()
    server.kill()
    print(f"tritonclient against an instant server: median {np.median(times) * 1e3:.3f} ms wall, "
          f"p10 {np.percentile(times, 10) * 1e3:.3f} ms, client CPU {cpu * 1e3:.3f} ms per call")
    print(json.dumps({"median_ms": round(float(np.median(times)) * 1e3, 3),
                      "p10_ms": round(float(np.percentile(times, 10)) * 1e3, 3), "client_cpu_ms": round(cpu * 1e3, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
