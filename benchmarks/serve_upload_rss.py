"""Peak memory of `synthaug serve` while it refuses a 40 MB upload (issue 28; the figures are in docs/serving.md).

Starts the server on a free loopback port with the default 10 MB body limit, then sends 40 MB to /api/classify
twice (after one ordinary classify request), the way urllib does (whole body first, then read the answer): once with Content-Length (refused from the
header, the body read and dropped chunk by chunk) and once chunked with no Content-Length (the first 10 MB are
kept, as for any body, until the limit is passed; the rest is dropped). After each it reads the server's peak
resident memory (VmHWM, /proc, Linux) and checks that the client got the 413.

    nice -n 19 python benchmarks/serve_upload_rss.py --generator-run RUN --classifier-run RUN

Without run folders it trains two tiny ones first (digits, 2 steps: memory, not quality, is measured).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 2**20


def cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "synthaug.cli.main", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def tiny_runs(folder: Path) -> tuple[str, str]:
    gen, clf = folder / "cgan", folder / "classifier"
    subprocess.run(cli(["generator", "fit", "--generator", "cgan", "--dataset", "digits", "--per-class", "5",
                        "--steps", "2", "--batch-size", "10", "--no-progress", "--out", str(gen)]),
                   env=env(), check=True, capture_output=True)
    subprocess.run(cli(["train", "--dataset", "digits", "--per-class", "5", "--steps", "2", "--batch-size", "10",
                        "--no-progress", "--out", str(clf)]), env=env(), check=True, capture_output=True)
    return str(gen), str(clf)


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak so far (VmHWM), MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def announced(url: str, body: bytes) -> int:
    request = urllib.request.Request(f"{url}/api/classify", data=body,
                                     headers={"Content-Type": "multipart/form-data; boundary=x"})
    try:
        urllib.request.urlopen(request, timeout=120)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def classify_small(url: str) -> int:
    """One ordinary classify request, so that the baseline includes what any request loads the first time."""
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("L", (28, 28)).save(png, format="PNG")
    body = (b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
            + png.getvalue() + b"\r\n--x--\r\n")
    request = urllib.request.Request(f"{url}/api/classify", data=body,
                                     headers={"Content-Type": "multipart/form-data; boundary=x"})
    with urllib.request.urlopen(request, timeout=300) as r:
        return r.status


def chunked(port: int, body: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 65536):
            sock.sendall(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536]))
        sock.sendall(b"0\r\n\r\n")
        return int(sock.recv(65536).split()[1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--generator-run")
    p.add_argument("--classifier-run")
    p.add_argument("--upload-mb", type=int, default=40)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        gen, clf = (a.generator_run, a.classifier_run) if a.generator_run else tiny_runs(Path(scratch))
        port = free_port()
        log = open(Path(scratch) / "server.log", "w")
        server = subprocess.Popen(cli(["serve", "--generator-run", gen, "--classifier-run", clf, "--host", "127.0.0.1",
                                       "--port", str(port), "--device", "cpu", "--threads", "1"]),
                                  env=env(), stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 900  # a busy machine's nice 19 start-up can take minutes
            while True:
                try:
                    health = json.loads(urllib.request.urlopen(f"{url}/api/health", timeout=2).read())
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        output = (Path(scratch) / "server.log").read_text()[-3000:]
                        raise RuntimeError(f"the server did not start: {output}")
                    time.sleep(0.5)
            limit = health["limits"]["max_upload_bytes"]
            body = bytes(a.upload_mb * MB)
            rows = [{"step": "started", **memory_mb(server.pid)}]
            rows.append({"step": "after a 28x28 PNG classified", "status": classify_small(url), **memory_mb(server.pid)})
            status = announced(url, body)
            rows.append({"step": f"{a.upload_mb} MB with Content-Length", "status": status, **memory_mb(server.pid)})
            rows.append({"step": f"{a.upload_mb} MB chunked", "status": chunked(port, body), **memory_mb(server.pid)})
        finally:
            server.terminate()
            server.wait(60)
            log.close()
    print(f"body limit {limit / MB:g} MB; server memory, MB (VmHWM is the peak so far):")
    for row in rows:
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}))
    return 0 if [r.get("status") for r in rows] == [None, 200, 413, 413] else 1


if __name__ == "__main__":
    sys.exit(main())
