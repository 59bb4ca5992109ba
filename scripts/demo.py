"""``make demo``: the whole suite on the simulated heat pump, as local processes.

Broker (TLS, passwords, ACL) → sim → bridge → web proxy, then one fetch through the broker.
Everything lives in .demo/ (kept between runs, so passwords stay the same); logs in .demo/logs/.
Ctrl-C stops it all. ``--check`` starts everything, proves data flows, and exits (used by tests).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import paho.mqtt.client as mqtt
from aurora.setup.layout import Layout
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEVICE = "aurora-2611000042"  # the demo unit's made-up serial number


def free_port(preferred: int) -> int:
    """``preferred`` when nobody listens there, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


class Suite:
    """The processes of the demo; stopped together."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[tuple[str, subprocess.Popen[str]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        log = (self.logs / f"{name}.log").open("w")
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, **(env or {})}
        )
        self.processes.append((name, process))
        return process

    def wait_line(
        self, name: str, process: subprocess.Popen[str], pattern: str, deadline_s: float = 30
    ) -> str:
        """Read the process's stdout until a line matches (the sim prints where it listens)."""
        assert process.stdout is not None
        result: list[str] = []

        def reader() -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                if re.search(pattern, line):
                    result.append(line.strip())
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(deadline_s)
        if not result:
            raise RuntimeError(f"{name} did not start; see {self.logs / (name + '.log')}")
        return result[0]

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for _, process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def setup_broker(suite: Suite, port: int) -> Path:
    """Run aurora_setup into .demo/etc and start mosquitto on 127.0.0.1:port."""
    etc = suite.root / "etc"
    data = suite.root / "data"
    for path in (suite.root, etc):
        path.mkdir(exist_ok=True)
        path.chmod(0o711)  # mosquitto (after dropping root) passes through, lists nothing
    data.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam("mosquitto")
        os.chown(data, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [str(BIN / "aurora_setup"), "--dir", str(etc), "--broker-data", str(data) + "/",
         "--mosquitto-source", str(REPO / "mosquitto")],
        check=True, stdout=(suite.logs / "setup.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    conf_text = (etc / "mosquitto" / "mosquitto.conf").read_text()
    conf_text = re.sub(r"^listener\s+\d+\s*$", f"listener {port} 127.0.0.1", conf_text, flags=re.MULTILINE)
    conf = suite.root / "mosquitto.conf"
    conf.write_text(conf_text)
    suite.start("mosquitto", ["mosquitto", "-c", str(conf)])
    deadline = time.monotonic() + 15
    while " running" not in (suite.logs / "mosquitto.log").read_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"mosquitto did not start; see {suite.logs / 'mosquitto.log'}")
        time.sleep(0.05)
    return etc


def wait_ready(etc: Path, port: int, deadline_s: float = 60) -> None:
    """Wait for the bridge's retained $state=ready, as user fetch sees it."""
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fetch-demo-{os.getpid()}")
    layout = Layout(etc)
    client.username_pw_set("fetch", layout.password("fetch").read_text().strip())
    client.tls_set_context(ssl.create_default_context(cafile=str(layout.ca_cert)))
    client.on_connect = lambda c, *_: c.subscribe(f"homie/{DEVICE}/$state", qos=1)
    client.on_message = lambda c, u, m: m.payload == b"ready" and ready.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not ready.wait(deadline_s):
            raise RuntimeError("the bridge did not become ready; see .demo/logs/bridge.log")
    finally:
        client.disconnect()
        client.loop_stop()


def hold_lock(root: Path) -> TextIO | None:
    """An exclusive lock on ``root/lock`` for as long as this process lives; None if another
    demo holds it (a second demo must never use, or overwrite, the first one's files)."""
    root.mkdir(parents=True, exist_ok=True)
    handle = (root / "lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def owner(root: Path) -> str:
    """The pid the running demo wrote into its lock file."""
    try:
        return (root / "lock").read_text().strip() or "?"
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="start, prove data flows, stop")
    parser.add_argument("--root", type=Path, default=REPO / ".demo")
    args = parser.parse_args()
    root = args.root.resolve()
    lock = hold_lock(root)
    if lock is None:
        message = f"make demo: another demo is running in {root} (pid {owner(root)}); stop it first"
        print(message, file=sys.stderr)
        return 1
    suite = Suite(root)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        mqtt_port = free_port(8883)
        web_port = free_port(4567)
        etc = setup_broker(suite, mqtt_port)
        layout = Layout(etc)
        secret = {user: str(layout.password(user)) for user in ("bridge", "fetch", "web")}
        ca = str(layout.ca_cert)
        writes = suite.logs / "sim-writes.log"
        writes.write_text("")  # there from the start, for `tail -f`
        sim = suite.start(
            "sim", [str(BIN / "aurora_sim"), "--tcp", "127.0.0.1:0", "--write-log", str(writes)]
        )
        sim_url = suite.wait_line("sim", sim, r"listening: tcp://").split()[-1]
        broker = f"mqtts://{{user}}@127.0.0.1:{mqtt_port}/"
        suite.start(
            "bridge",
            [str(BIN / "aurora_mqtt_bridge"), sim_url, broker.format(user="bridge")],
            {"AURORA_MQTT_PASSWORD_FILE": secret["bridge"], "AURORA_MQTT_CA_FILE": ca,
             "AURORA_BRIDGE_ENERGY_STATE": str(args.root.resolve() / "energy-{device}.json")},
        )  # fmt: skip
        wait_ready(etc, mqtt_port)
        web_target = broker.format(user="web") + f"homie/{DEVICE}/$modbus"
        web = suite.start(
            "web",
            [str(BIN / "web_aid_tool"), web_target, "--port", str(web_port)],
            {"AURORA_MQTT_PASSWORD_FILE": secret["web"], "AURORA_MQTT_CA_FILE": ca,
             "AURORA_WEB_PASSWORD_FILE": str(layout.web_ui_password)},
        )  # fmt: skip
        web_url = suite.wait_line("web", web, r"listening: http://").split()[-1]
        fetch_url = broker.format(user="fetch") + f"homie/{DEVICE}/$modbus"
        fetch_env = {"AURORA_MQTT_PASSWORD_FILE": secret["fetch"], "AURORA_MQTT_CA_FILE": ca}
        fetch_argv = [str(BIN / "aurora_fetch"), fetch_url, "745-747,1110-1111"]
        fetched = subprocess.run(
            fetch_argv, env={**os.environ, **fetch_env}, capture_output=True, text=True, timeout=60
        )
        # Every command printed is copy-paste-safe from any directory: absolute paths, and the
        # URL quoted ($modbus would otherwise be expanded by the shell to nothing).
        env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in fetch_env.items())
        print(f"$ {env_words} \\\n    {shlex.join(fetch_argv)}")
        print(fetched.stdout or fetched.stderr)
        if fetched.returncode != 0:
            return 1
        q = shlex.quote
        print(
            f"""The demo is running (logs in {suite.logs}):
  web UI      {web_url}   password in {layout.web_ui_password}
  broker      mqtts://127.0.0.1:{mqtt_port}/ (TLS, CA {ca})
  watch it    mosquitto_sub --cafile {q(ca)} -h 127.0.0.1 -p {mqtt_port} -u fetch \\
                -P "$(cat {q(secret["fetch"])})" -t 'homie/+/+/+' -v
  fetch       {env_words} \\
                {q(str(BIN / "aurora_fetch"))} {q(fetch_url)} valid
  writes      what the heat pump was told to write (web UI settings, /set topics), as 'ADDRESS VALUE':
                tail -f {q(str(writes))}
  Home Assistant: see {suite.logs / "setup.log"}
Ctrl-C stops everything."""
        )
        if args.check:
            return 0
        while not stop.wait(0.5):
            for name, process in suite.processes:
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; see {suite.logs / (name + '.log')}")
                    return 1
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, subprocess.SubprocessError, OSError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    finally:
        suite.stop()


if __name__ == "__main__":
    raise SystemExit(main())
