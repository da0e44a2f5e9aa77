#!/usr/bin/env python3
"""Router benchmark: requests/s and p99 latency direct to a backend process, through
shipmate's router and through HAProxy, with the same load generator (wrk), in one run; and
over HTTPS (both ending TLS with the same certificate), kept-alive and a new connection per
request.

    python bench/router.py                 # ~3 minutes; prints a table, writes bench/results/
    python bench/router.py --duration 5 --rounds 1
    python bench/router.py --against DIR   # a second router from another checkout, interleaved

The backend is a process that answers every request with a fixed small response (HAProxy's
`http-request return`, single-threaded): it is faster than any proxy in front of it, so the
figures measure the proxies, not an app. Both proxies run as they would be deployed: the
shipmate router as its daemon (`python -m shipmate.router`, routes set through its admin
socket), HAProxy with Debian's defaults (one thread per CPU) and a static backend. Every
target is measured in each round, interleaved (each round starting at another target), and
the median of the rounds is reported, so that noise from other work on the machine hits all
of them alike.

`--against DIR` adds a fourth target: the router of another checkout of shipmate (say, the
code before a change), run by DIR/.venv/bin/python when that exists, with DIR first on
PYTHONPATH; it is measured in every round between the others, a before-and-after comparison
under the same load.

Needs `wrk` and `haproxy` (Debian: `apt-get install wrk haproxy`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "web.bench.localhost"
# About what the example app answers: a small JSON document.
BODY = '{"app": "bench", "release": "RABCDEFGHI", "greeting": "hello", "pid": 4242}\\n'
POST_BYTES = 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"ERROR: nothing listens on port {port} after {timeout:g}s")


def haproxy(workdir: Path, name: str, config: str) -> subprocess.Popen[bytes]:
    path = workdir / f"{name}.cfg"
    path.write_text(config)
    check = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True)
    if check.returncode:
        raise SystemExit(f"ERROR: haproxy rejects {path}: {check.stderr.decode().strip()}")
    # -db: stay in the foreground, so the PID is HAProxy's own and stopping it is one signal.
    return subprocess.Popen(
        ["haproxy", "-db", "-f", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / f"{name}.log").open("wb"),
    )


DEFAULTS = """
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
"""


def backend_config(port: int) -> str:
    body = BODY.replace('"', '\\"')
    return f"""
global
  nbthread 1
{DEFAULTS}
frontend backend
  bind 127.0.0.1:{port}
  http-request return status 200 content-type application/json string "{body}"
"""


def proxy_config(port: int, backend: int, tls_port: int, pem: Path) -> str:
    # Debian's defaults otherwise: one thread per CPU, keep-alive on both sides; TLS ended
    # with the same certificate as the router's, plain HTTP to the backend as the router does.
    return f"""
global
  maxconn 4096
{DEFAULTS}
frontend proxy
  bind 127.0.0.1:{port}
  default_backend app
frontend tls
  bind 127.0.0.1:{tls_port} ssl crt {pem}
  default_backend app
backend app
  server app1 127.0.0.1:{backend}
"""


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def interpreter(checkout: Path) -> tuple[str, dict[str, str]]:
    """The Python and environment that run `checkout`'s code (checked: not this checkout's)."""
    venv = checkout / ".venv" / "bin" / "python"
    python = str(venv) if venv.exists() else sys.executable
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    where = subprocess.run(
        [python, "-c", "import shipmate; print(shipmate.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=checkout,
        check=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"ERROR: {python} imports shipmate from {where}, not from {checkout}")
    return python, env


def make_cert(workdir: Path) -> tuple[str, str, Path]:
    """A self-signed certificate for HOST and 127.0.0.1 (EC P-256, as ACME clients default
    to): (cert PEM, key PEM, both in one file for HAProxy's `crt`)."""
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.now(UTC)
    alt = [x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pem = workdir / "bench.pem"
    pem.write_text(cert_pem + key_pem)
    return cert_pem, key_pem, pem


def start_router(
    workdir: Path,
    name: str,
    port: int,
    backend: int,
    workers: int | None,
    checkout: Path = ROOT,
    tls: tuple[int, str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    home = workdir / f"{name}-home"
    home.mkdir()
    python, env = interpreter(checkout)
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(
        [python, "-m", "shipmate.router", "--home", str(home), "--listen", f"127.0.0.1:{port}"]
        + (["--workers", str(workers)] if workers else [])
        + (["--listen-https", f"127.0.0.1:{tls[0]}"] if tls else []),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=checkout,
        env=env,
    )
    deadline = time.monotonic() + 30
    sock = home / "router.sock"
    while not (home / "router.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"ERROR: the router did not start; see {log}")
        time.sleep(0.05)
    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(transport=transport, base_url="http://router") as admin:
        admin.put("/routes/bench/web", json={"backends": [f"127.0.0.1:{backend}"]})
        if tls:
            answer = admin.put("/certs/bench", json={"cert": tls[1], "key": tls[2]})
            if answer.status_code != 200:
                raise SystemExit(f"ERROR: the router refused the certificate: {answer.text}")
        workers = admin.get("/health").json()["workers"]
    return proc, 1 + len(workers)


def balanced_order(targets: list[tuple[str, str]], round_: int) -> list[tuple[str, str]]:
    """The order of the targets in one round. A target measured right after `direct` can lose
    up to half its requests/s (its backlog), so no target may take that place more often than
    another: every second round is the one before with the two routers swapped, and each pair
    of rounds starts at another target. (Rotating a fixed order, as this script first did, put
    `shipmate` right after `direct` in three rounds out of four.) The pause after each
    measurement covers the rest: the target after `direct` across rounds and scenarios."""
    names = [name for name, _ in targets]
    if round_ % 2 and "shipmate" in names and "against" in names:
        i, j = names.index("shipmate"), names.index("against")
        targets = list(targets)
        targets[i], targets[j] = targets[j], targets[i]
    shift = (round_ // 2) % len(targets)
    return targets[shift:] + targets[:shift]


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> dict[str, float]:
    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(value) * UNITS[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": total, "errors": errors}


def wrk(
    url: str,
    args: argparse.Namespace,
    duration: float,
    script: Path | None,
    headers: tuple[str, ...] = (),
) -> str:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration:g}s", "--latency"]
    cmd += ["-H", f"Host: {HOST}"]
    for header in headers:
        cmd += ["-H", header]
    if script is not None:
        cmd += ["-s", str(script)]
    done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=duration + 60)
    if done.returncode:
        raise SystemExit(f"ERROR: wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def machine() -> dict[str, object]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    haproxy_v = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "event_loop": loop,
        "haproxy": haproxy_v.splitlines()[0] if haproxy_v else "unknown",
        "wrk": (wrk_v.stdout or wrk_v.stderr).splitlines()[0],
        "load_before": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, discarded")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pause", type=float, default=1.0, help="seconds of rest after each measurement"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--router-workers", type=int, default=None, help="default: the daemon's (one per CPU)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--against", type=Path, metavar="DIR", help="also measure the router of this checkout"
    )
    args = parser.parse_args()
    if args.against is not None and not (args.against / "shipmate" / "__init__.py").is_file():
        raise SystemExit(f"ERROR: {args.against} is not a checkout of shipmate")
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None:
            raise SystemExit(f"ERROR: {tool} is not installed: apt-get install wrk haproxy")

    started = datetime.now(UTC)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="shipmate-bench-") as tmp, processes() as procs:
        workdir = Path(tmp)
        post = workdir / "post.lua"
        post.write_text(
            'wrk.method = "POST"\n'
            f'wrk.body = string.rep("x", {POST_BYTES})\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        )
        ports = {"direct": free_port(), "shipmate": free_port()}
        if args.against is not None:
            ports["against"] = free_port()
        ports["haproxy"] = free_port()
        tls_ports = {"shipmate": free_port(), "haproxy": free_port()}
        cert_pem, key_pem, pem = make_cert(workdir)
        procs.append(haproxy(workdir, "backend", backend_config(ports["direct"])))
        procs.append(
            haproxy(
                workdir,
                "proxy",
                proxy_config(ports["haproxy"], ports["direct"], tls_ports["haproxy"], pem),
            )
        )
        router, info["router_processes"] = start_router(
            workdir,
            "shipmate",
            ports["shipmate"],
            ports["direct"],
            args.router_workers,
            tls=(tls_ports["shipmate"], cert_pem, key_pem),
        )
        procs.append(router)
        if args.against is not None:
            other, _ = start_router(
                workdir,
                "against",
                ports["against"],
                ports["direct"],
                args.router_workers,
                args.against,
            )
            procs.append(other)
        for port in [*ports.values(), *tls_ports.values()]:
            wait_port(port)
        plain = {t: f"http://127.0.0.1:{p}/" for t, p in ports.items()}
        secure = {t: f"https://127.0.0.1:{p}/" for t, p in tls_ports.items()}
        # HTTPS: kept-alive connections, then a new connection (a full handshake) per request.
        scenarios: dict[str, tuple[Path | None, tuple[str, ...], dict[str, str]]] = {
            "GET": (None, (), plain),
            f"POST {POST_BYTES} B": (post, (), plain),
            "HTTPS GET": (None, (), secure),
            "HTTPS new conn": (None, ("Connection: close",), secure),
        }
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            s: {t: [] for t in urls} for s, (_, _, urls) in scenarios.items()
        }
        for scenario, (script, headers, urls) in scenarios.items():
            for url in urls.values():
                wrk(url, args, args.warmup, script, headers)
            for round_ in range(args.rounds):
                order = balanced_order(list(urls.items()), round_)
                for target, url in order:
                    figures = parse_wrk(wrk(url, args, args.duration, script, headers))
                    runs[scenario][target].append(figures)
                    time.sleep(args.pause)  # let the backlog of this target clear first
                    print(
                        f"  {scenario:<14} round {round_ + 1}/{args.rounds} {target:<9} "
                        f"{figures['rps']:>10,.0f} req/s  p99 {figures['p99_ms']:.2f} ms",
                        flush=True,
                    )

    summary: dict[str, dict[str, dict[str, float]]] = {}
    for scenario, targets in runs.items():
        summary[scenario] = {
            target: {
                "rps": statistics.median(r["rps"] for r in results),
                "p99_ms": statistics.median(r["p99_ms"] for r in results),
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "errors": sum(r["errors"] for r in results),
            }
            for target, results in targets.items()
        }
    print()
    info["load_after"] = os.getloadavg()
    print(f"{'scenario':<16}{'target':<16}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    names = {
        "direct": "direct",
        "shipmate": "shipmate router",
        "against": "against router",
        "haproxy": "haproxy",
    }
    for scenario, targets in summary.items():
        for target, s in targets.items():
            print(
                f"{scenario:<16}{names[target]:<16}{s['rps']:>10,.0f}{s['p50_ms']:>9.2f}"
                f"{s['p99_ms']:>9.2f}{s['errors']:>8}"
            )
        for target in ("shipmate", "against"):
            if target in targets:
                ratio = targets[target]["rps"] / targets["haproxy"]["rps"]
                print(f"{'':<16}{names[target]} / haproxy: {ratio:.2f} of the requests/s")
    if args.against is not None:
        print(f"against: {args.against.resolve()}")
    print(
        f"shipmate router: {info['router_processes']} processes on {info['event_loop']}; "
        f"{info['nproc']} CPUs ({info['cpu']}); load before: {info['load_before'][0]:.2f}, "
        f"after: {info['load_after'][0]:.2f}"
    )
    command = "python bench/router.py " + " ".join(sys.argv[1:])
    result = {
        "benchmark": "router",
        "started": started.isoformat(timespec="seconds"),
        "command": command.strip(),
        "machine": info,
        "parameters": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "pause_s": args.pause,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "post_bytes": POST_BYTES,
            "against": str(args.against.resolve()) if args.against else None,
        },
        "summary": summary,
        "ratio_shipmate_to_haproxy": {
            s: t["shipmate"]["rps"] / t["haproxy"]["rps"] for s, t in summary.items()
        },
        "ratio_against_to_haproxy": {
            s: t["against"]["rps"] / t["haproxy"]["rps"]
            for s, t in summary.items()
            if "against" in t
        },
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"router-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
