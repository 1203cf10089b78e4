"""Start-up with a mailbox whose server is down (issue 17), run by hand:
`python bench/degraded_start.py [--timeout 60]`.

The example config's two mailboxes on the test bed, plus a third (`late`) on a loopback port
that accepts connections and never answers (a server that hangs, a firewall dropping the rest),
with `timeout` = --timeout. Measures, per case, the seconds from spawning `run.py run` to
READY ("mailrouter started") or to its exit, and the first message routed in `sales`:

  silent   late's server accepts and never answers
  refused  late's server is the bed, with a wrong password
  dead     late's port is closed (connection refused)

Writes bench/results/degraded_start.json.
"""
from __future__ import annotations

import argparse
import socket
import threading
import time
import tomllib
from pathlib import Path

import tomli_w
from common import DaemonProcess, envelope, print_table, test_bed, write_config, write_result


def silent_server() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(sock.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    return sock


def case(name: str, timeout: float) -> dict[str, object]:
    with test_bed(["late@example.com"]) as (bed, workdir):
        path = write_config(bed, workdir)
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        base = {k: v for k, v in data["mailbox"][0].items() if k not in ("name", "address", "user", "display_name")}
        late = {**base, "name": "late", "address": "late@example.com", "user": "late@example.com",
                "timeout": timeout}
        server = closed = None
        if name == "silent":
            server = silent_server()
            late["port"] = server.getsockname()[1]
        elif name == "dead":
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
            late["port"] = closed.getsockname()[1]
        else:
            wrong = workdir / "wrong-password"
            wrong.write_text("not-the-password")
            wrong.chmod(0o600)
            late["password_file"] = str(wrong)
        data["mailbox"].append(late)
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        log = workdir / "daemon.log"
        try:
            with DaemonProcess(path, log) as daemon:
                while daemon.process.poll() is None and "mailrouter started" not in log.read_text():
                    time.sleep(0.05)
                ready = time.time() - daemon.started
                outcome = "READY" if daemon.process.poll() is None else f"exit {daemon.process.returncode}"
        finally:
            for sock in (server, closed):
                if sock is not None:
                    sock.close()
        lines = [line for line in log.read_text().splitlines() if "late" in line and (" ERROR " in line)]
        return {"case": name, "outcome": outcome, "seconds": round(ready, 1), "late_error_lines": len(lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0, help="the late mailbox's server timeout")
    parser.add_argument("--cases", nargs="+", default=["silent", "refused", "dead"])
    args = parser.parse_args()
    rows = [case(name, args.timeout) for name in args.cases]
    print_table(["case", "outcome", "s to READY/exit", "ERROR lines for late"],
                [[r["case"], r["outcome"], r["seconds"], r["late_error_lines"]] for r in rows])
    write_result("degraded_start", envelope(timeout=args.timeout, cases=rows))


if __name__ == "__main__":
    main()
