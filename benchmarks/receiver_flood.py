"""Hostile clients against ``slaos-logging serve``: peak memory, and health meanwhile.

```
python benchmarks/receiver_flood.py [--clients 40] [--body-mb 4.9] [--pathological 3] [--json]
```

Starts ``slaos-logging serve`` as its own process, then, all at once: ``--clients`` bodies
of about ``--body-mb`` MB (under the default 5 MB limit) of valid events with the right key,
as many with a wrong key, and ``--pathological`` bodies made to cost the most (one of 2.4 M
tiny items, the others of 10,000 events each with dozens of unknown fields, answered 400).
Meanwhile a probe asks ``GET /v1/health`` every 100 ms. Prints the receiver's peak RSS
(``VmHWM``), the slowest and median health answers, and what each kind of request was answered.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

_EVENT = (
    '{{"organization_id":"org-{n}","key":"rated_api","timestamp":"2026-11-25T10:00:00Z",'
    '"values":{{"status_code":200,"took":0.0123,"path":"/v1/orders/{n}","pad":"{pad}"}},'
    '"idempotency_key":"flood-{tag}-{n}"}}'
)


def valid_body(megabytes: float, tag: str) -> bytes:
    """A list of valid events of about ``megabytes`` MB (each about 600 bytes)."""
    one = _EVENT.format(n=0, pad="x" * 400, tag=tag)
    count = int(megabytes * 1_000_000 / (len(one) + 1))
    items = (_EVENT.format(n=n, pad="x" * 400, tag=tag) for n in range(count))
    return ("[" + ",".join(items) + "]").encode()


def tiny_items_body(megabytes: float) -> bytes:
    """The review's worst case: millions of 1-byte items (2.4 M in 4.8 MB)."""
    count = int(megabytes * 1_000_000 / 2)
    return ("[" + ",".join(["0"] * count) + "]").encode()


def unknown_fields_body(megabytes: float, events: int) -> bytes:
    """``events`` invalid events filling ``megabytes`` MB with short unknown field names."""
    per_event = int(megabytes * 1_000_000 / events)
    fields = max(1, per_event // 9)
    one = "{" + ",".join(f'"f{i:03d}":0' for i in range(fields)) + "}"
    return ("[" + ",".join([one] * events) + "]").encode()


def post(port: int, path: str, body: bytes, timeout: float = 120.0) -> str:
    """POST with a raw socket (no client-side copies); return the status code, or the error."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(head)
            try:
                sock.sendall(body)
            except OSError:
                pass  # answered early (401, 413, 503) and closed: read the answer
            reply = sock.recv(64)
        return reply.split(b" ", 2)[1].decode() if reply else "no answer"
    except OSError as exc:
        return type(exc).__name__


def health(port: int) -> float:
    """Seconds for one GET /v1/health on a fresh connection (inf when it fails)."""
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if not sock.recv(64).startswith(b"HTTP/1.1 200"):
                return float("inf")
    except OSError:
        return float("inf")
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def start_receiver(db: str, python: str) -> tuple[subprocess.Popen[bytes], int]:
    """Run ``slaos-logging serve`` on a free port; return the process and the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    # The key on the command line (not the environment) so older versions run this too.
    command = [python, "-m", "slaos_logging", "serve", "--port", str(port), "--db", db]
    command += ["--ingestion-id", "flood", "--ingestion-key", "flood-key", "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while health(port) == float("inf"):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the receiver did not come up")
        time.sleep(0.05)
    return proc, port


def flood(clients: int, body_mb: float, pathological: int, python: str) -> dict[str, object]:
    """Run the flood once and return the figures."""
    bodies: list[tuple[str, str, bytes]] = []
    for i in range(clients):
        bodies.append(("valid", "/v1/ingest/flood/flood-key", valid_body(body_mb, str(i))))
        bodies.append(("wrong key", "/v1/ingest/flood/wrong-key", valid_body(body_mb, "w")))
    for i in range(pathological):
        body = tiny_items_body(4.8) if i == 0 else unknown_fields_body(4.8, 10_000)
        kind = "2.4M tiny items" if i == 0 else "10k invalid events"
        bodies.append((kind, "/v1/ingest/flood/flood-key", body))
    with tempfile.TemporaryDirectory() as folder:
        proc, port = start_receiver(os.path.join(folder, "flood.sqlite"), python)
        try:
            baseline = peak_rss_mb(proc.pid)
            answers: Counter[tuple[str, str]] = Counter()
            lock = threading.Lock()

            def send(kind: str, path: str, body: bytes) -> None:
                status = post(port, path, body)
                with lock:
                    answers[(kind, status)] += 1

            threads = [threading.Thread(target=send, args=b) for b in bodies]
            probes: list[float] = []
            started = time.monotonic()
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                probes.append(health(port))
                time.sleep(0.1)
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            peak = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "clients": clients,
        "body_mb": body_mb,
        "pathological": pathological,
        "seconds": round(elapsed, 2),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(peak, 1),
        "health_probes": len(probes),
        "health_max_s": round(max(probes), 3) if probes else None,
        "health_median_s": round(statistics.median(probes), 4) if probes else None,
        "answers": {f"{kind} -> {status}": n for (kind, status), n in sorted(answers.items())},
    }


def main() -> None:
    """Parse the options, run the flood, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--body-mb", type=float, default=4.9)
    parser.add_argument("--pathological", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs the receiver (compare versions)",
    )
    args = parser.parse_args()
    result = flood(args.clients, args.body_mb, args.pathological, args.python)
    if args.json:
        print(json.dumps(result))
        return
    for name, value in result.items():
        if isinstance(value, dict):
            for kind, n in value.items():
                print(f"  {kind}: {n}")
        else:
            print(f"{name}: {value}")


if __name__ == "__main__":
    main()
