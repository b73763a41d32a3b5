"""Load test of `synthaug serve` on loopback: N concurrent clients for T seconds, micro-batching on vs off.

Starts the server in a subprocess once per mode (same models and flags, but for the batching ones), then for each N
runs N clients that POST /api/generate back to back (a 503 is honoured: the client waits its Retry-After).
Reports requests/s, images/s, p50/p99 latency of the answered requests, 503s, other errors (must be 0),
and how many requests shared a forward pass (from /api/health). Client and server share the machine.

    python benchmarks/serve_load.py --generator-run runs/serve/cgan --classifier-run runs/serve/classifier \
        --clients 1,4,16,64 --seconds 10 --count 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    mode: str
    clients: int
    seconds: float
    ok: int = 0
    busy: int = 0  # 503 answers (allowed: the server says so and when to retry)
    errors: int = 0  # anything else (must stay 0)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    forward_passes: int = 0
    batches: int = 0
    server_cpu_s: float = 0.0  # CPU seconds the server process used during the level (all its threads)
    client_cpu_s: float = 0.0  # CPU seconds this load generator used during the level

    def row(self, count: int) -> dict:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([float("nan")])
        return {"mode": self.mode, "clients": self.clients, "requests_per_s": self.ok / self.seconds,
                "images_per_s": self.ok * count / self.seconds, "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)), "ok": self.ok, "503": self.busy, "errors": self.errors,
                "requests_per_forward_pass": self.ok / self.forward_passes if self.forward_passes else float("nan"),
                "requests_per_batch": self.ok / self.batches if self.batches else float("nan"),
                "server_cpu_per_s": self.server_cpu_s / self.seconds, "client_cpu_per_s": self.client_cpu_s / self.seconds}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one when pid is None), from /proc (Linux)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/health", timeout=5) as r:
        return json.loads(r.read())


MODES = {"on": [], "on-0ms": ["--batch-wait-ms", "0"], "off": ["--no-batching"]}  # extra serve flags per mode (on: 10 ms wait)


def start_server(args: argparse.Namespace, mode: str, wait_s: float = 120.0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "synthaug.cli.main", "serve", "--generator-run", args.generator_run,
           "--classifier-run", args.classifier_run, "--port", str(port), "--device", args.device,
           "--forward-rows", str(args.forward_rows), "--max-pending", str(args.max_pending)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += MODES[mode]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("SYNTHAUG_TOKEN", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {' '.join(cmd)}")
        try:
            health(url)
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"server did not answer within {wait_s:g} s")
            time.sleep(0.3)


async def client(http: httpx.AsyncClient, generator: str, classes: list[str], count: int, stop_at: float,
                 result: Result, rng: random.Random) -> None:
    while time.monotonic() < stop_at:
        body = {"generator": generator, "class_name": rng.choice(classes), "count": count, "seed": rng.randrange(2**31)}
        start = time.perf_counter()
        try:
            r = await http.post("/api/generate", json=body)
        except httpx.HTTPError:
            result.errors += 1
            continue
        if r.status_code == 200:
            result.ok += 1
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
        elif r.status_code == 503:
            result.busy += 1
            await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), max(0.0, stop_at - time.monotonic())))
        else:
            result.errors += 1


async def load(url: str, mode: str, clients: int, seconds: float, count: int, server_pid: int) -> Result:
    gens = json.loads(urllib.request.urlopen(f"{url}/api/generators").read())["generators"]
    generator, classes = gens[0]["name"], gens[0]["class_names"]
    before = health(url)["generators"][generator]
    result = Result(mode, clients, seconds)
    cpu_server, cpu_client = cpu_seconds(server_pid), cpu_seconds()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        stop_at = time.monotonic() + seconds
        started = time.monotonic()
        await asyncio.gather(*[client(http, generator, classes, count, stop_at, result, random.Random(i))
                               for i in range(clients)])
        result.seconds = time.monotonic() - started  # the last requests finish after stop_at
    result.server_cpu_s, result.client_cpu_s = cpu_seconds(server_pid) - cpu_server, cpu_seconds() - cpu_client
    after = health(url)["generators"][generator]
    result.forward_passes = after["forward_passes"] - before["forward_passes"]
    result.batches = after["batches"] - before["batches"]
    return result


def markdown(rows: list[dict]) -> str:
    lines = ["| micro-batching | clients | requests/s | images/s | p50 ms | p99 ms | 503 | errors | requests per forward pass "
             "| server CPU s/s | client CPU s/s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['clients']} | {r['requests_per_s']:.1f} | {r['images_per_s']:.0f} | "
                     f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['503']} | {r['errors']} | "
                     f"{r['requests_per_forward_pass']:.2f} | {r['server_cpu_per_s']:.2f} | {r['client_cpu_per_s']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator-run", default="runs/serve/cgan")
    p.add_argument("--classifier-run", default="runs/serve/classifier")
    p.add_argument("--clients", default="1,4,16,64", help="comma-separated concurrency levels")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each level")
    p.add_argument("--count", type=int, default=4, help="images per request")
    p.add_argument("--forward-rows", type=int, default=32)
    p.add_argument("--max-pending", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch threads of the server")
    p.add_argument("--modes", default="on,on-0ms,off", help=f"comma-separated, from: {', '.join(MODES)}")
    p.add_argument("--out", help="also write the rows as JSON here")
    args = p.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    rows = []
    modes = [m.strip() for m in args.modes.split(",")]
    for mode in modes:
        proc, url = start_server(args, mode)
        try:
            asyncio.run(load(url, mode, 1, min(2.0, args.seconds), args.count, proc.pid))  # warm-up, not reported
            for n in levels:
                result = asyncio.run(load(url, mode, n, args.seconds, args.count, proc.pid))
                rows.append(result.row(args.count))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        finally:
            proc.terminate()
            proc.wait(15)
    rows.sort(key=lambda r: (r["clients"], modes.index(r["mode"])))
    print(markdown(rows))
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}; "
          f"{args.count} images per request, forward_rows {args.forward_rows}, {args.seconds:g} s per level")
    if args.out:
        from synthaug.utils import write_json_atomic

        write_json_atomic(args.out, {"args": vars(args), "rows": rows})
    bad = sum(r["errors"] for r in rows)
    if bad:
        print(f"{bad} requests failed with something other than 503", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
