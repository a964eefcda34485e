"""``make demo``: run the whole job once on a throw-away data directory.

It starts ``postbackd receiver`` and ``postbackd run`` as subprocesses,
configures an app with two partners through the CLI, pipes the bundled
example events in (native and server-to-server format), waits for the
deliveries and prints what the receiver got and a per-partner summary.
Every address used is on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

# Maximum wait for the daemon to start or for deliveries to finish, in seconds.
TIMEOUT = 30.0


def postbackd(*args: str) -> list[str]:
    return [sys.executable, "-m", "postbackd", *args]


def run_cli(*args: str, socket_dir: Path | None, check: bool = True, stdin: bytes | None = None) -> str:
    """Run and show one postbackd command; ``socket_dir`` None for commands that read the log."""
    shown = " ".join(a if " " not in a and "{" not in a else repr(a) for a in args)
    print(f"$ postbackd {shown}")
    command = postbackd(*args) if socket_dir is None else postbackd(*args, "--socket-dir", str(socket_dir))
    result = subprocess.run(command, input=stdin, capture_output=True, timeout=TIMEOUT)
    output = (result.stdout + result.stderr).decode(errors="replace").rstrip()
    if output:
        print("  " + output.replace("\n", "\n  "))
    if check and result.returncode != 0:
        raise SystemExit(f"demo failed: postbackd {args[0]} exited with {result.returncode}")
    return output


def start_receiver(work: Path) -> tuple[subprocess.Popen, str, Path]:
    out_path = work / "receiver.jsonl"
    err_path = work / "receiver.err"
    process = subprocess.Popen(
        postbackd("receiver", "--host", "127.0.0.1", "--port", "0", "--json"),
        stdout=out_path.open("wb"), stderr=err_path.open("wb"),
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        text = err_path.read_text()
        if "listening on " in text:
            url = text.split("listening on ", 1)[1].split()[0].rstrip("/")
            return process, url, out_path
        if process.poll() is not None:
            raise SystemExit(f"demo failed: the receiver exited:\n{text}")
        time.sleep(0.05)
    raise SystemExit("demo failed: the receiver did not start")


def start_daemon(data_dir: Path, socket_dir: Path, log_path: Path) -> subprocess.Popen:
    settings = data_dir.parent / "postbackd.toml"
    settings.write_text("# demo settings: everything comes from the command line\n")
    process = subprocess.Popen(
        postbackd("run", "--data-dir", str(data_dir), "--socket-dir", str(socket_dir), "--config", str(settings),
                  "--allow-private-endpoints", "--retry-delays", "1s,2s", "--shutdown-grace", "3s"),
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if (socket_dir / "control.sock").exists():
            return process
        if process.poll() is not None:
            raise SystemExit(
                f"demo failed: the daemon exited with status {process.returncode}; its output:\n"
                f"{log_path.read_text() or '(none)'}"
            )
        time.sleep(0.05)
    raise SystemExit("demo failed: the daemon did not become ready")


def wait_for_deliveries(socket_dir: Path) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while True:
        status = json.loads(subprocess.run(
            postbackd("status", "--json", "--socket-dir", str(socket_dir)), capture_output=True, check=True,
        ).stdout)
        settled = all(p["pending"] == 0 and p["in_flight"] == 0 for p in status["partners"])
        finished = sum(p["delivered"] + p["failed"] for p in status["partners"])
        scheduled = sum(p["scheduled"] for p in status["partners"])
        if settled and finished >= scheduled:
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"demo failed: deliveries did not finish: {status}")
        time.sleep(0.2)


def print_received(out_path: Path) -> int:
    lines = [json.loads(line) for line in out_path.read_text().splitlines() if line.strip()]
    print(f"\nThe receiver got {len(lines)} postbacks:")
    for request in lines:
        query = " ".join(f"{k}={v}" for k, v in request["query"])
        print(f"  {request['method']} {request['path']} {query}")
    return len(lines)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="postbackd-demo-"))
    data_dir = work / "data"
    socket_dir = work / "run"
    examples = resources.files("postbackd") / "examples"
    receiver = daemon = None
    try:
        receiver, url, received_path = start_receiver(work)
        print(f"receiver listening on {url}")
        daemon = start_daemon(data_dir, socket_dir, work / "daemon.log")
        print(f"daemon running on a throw-away data directory {data_dir}\n")

        template = (f"url={url}/postback?event={{event_name}}&id={{event_id}}&pb={{postback_id}}"
                    f"&device={{device_id}}&attribution={{attribution_type}}&revenue={{revenue}}&currency={{currency}}")
        run_cli("app", "add", "demo-app", "--platform", "android", "--bundle-id", "com.example.demo",
                "--name", "Demo Game", socket_dir=socket_dir)
        for network, method in (("localnet", "network"), ("allnet", "all")):
            run_cli("partner", "add", "demo-app", network, "--integration", "custom",
                    "--field", template.replace("/postback", f"/{network}"), socket_dir=socket_dir)
            for event in ("install", "Purchase", "SessionBegin"):
                run_cli("postback", "add", "demo-app", network, event, "--method", method, socket_dir=socket_dir)
        for app, platform, bundle in (("kotestapp-android-1a2b3c", "android", "com.example.kotest"),
                                      ("kotestapp-ios-4d5e6f", "ios", "com.example.KoTest")):
            run_cli("app", "add", app, "--platform", platform, "--bundle-id", bundle, "--name", "KoTest",
                    socket_dir=socket_dir)
            run_cli("partner", "add", app, "allnet", "--integration", "custom",
                    "--field", template.replace("/postback", "/allnet"), socket_dir=socket_dir)
            for event in ("install", "Purchase"):
                run_cli("postback", "add", app, "allnet", event, "--method", "all", socket_dir=socket_dir)

        native = (examples / "native.jsonl").read_bytes()
        kochava = (examples / "kochava-s2s.jsonl").read_bytes()
        run_cli("send", "-", stdin=native, socket_dir=socket_dir)
        run_cli("send", "--format", "kochava", "-", stdin=kochava, socket_dir=socket_dir)

        wait_for_deliveries(socket_dir)
        count = print_received(received_path)
        print()
        run_cli("status", socket_dir=socket_dir)
        print("\nWhy each postback of device dev-a1 was sent or suppressed:")
        run_cli("audit", "--data-dir", str(data_dir), "--device", "dev-a1", socket_dir=None)
        if count == 0:
            raise SystemExit("demo failed: nothing was delivered")
    finally:
        # Stop both processes before printing anything: when the reader of
        # this output went away (make demo | head), a print raises, and the
        # processes must not outlive the demo.
        code = None
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(TIMEOUT)
        if receiver is not None:
            receiver.send_signal(signal.SIGINT)
            receiver.wait(TIMEOUT)
        keep = bool(os.environ.get("POSTBACKD_DEMO_KEEP"))
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        if code is not None:
            print(f"\ndaemon stopped with exit status {code}")
        if keep:
            print(f"kept {work}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        # The reader of the output closed it; everything is already stopped.
        sys.stderr.close()
        sys.exit(1)
