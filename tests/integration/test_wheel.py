"""The package as ``pip install`` gives it: built as a wheel, installed (not editable) into a fresh
virtual environment, and every entry point run from there as a user would.

An editable install (what ``make setup`` does) reads data files from the source tree and so hides
any that the wheel leaves out; this test sees only what the wheel holds.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Broker
from tests.support.broker import Collector, MqttRefused, publish
from tests.support.processes import free_port, running, tail, wait_for

REPO = Path(__file__).resolve().parents[2]
# What the wheel is built from: pyproject.toml names nothing else.
SOURCES = ("pyproject.toml", "README.md", "shared", "services", "mosquitto")
BUILD_S = 300.0  # pip fetches setuptools into the isolated build environment
INSTALL_S = 300.0
# the module's fixture builds and installs the wheel inside the first test's time limit
pytestmark = [pytest.mark.integration, pytest.mark.timeout(BUILD_S + INSTALL_S + 120)]
ENTRY_POINTS = (
    "aurora_fetch",
    "aurora_sim",
    "aurora_mock",
    "aurora_mqtt_bridge",
    "web_aid_tool",
    "aurora_monitor",
    "aurora_setup",
)
# setuptools' complaints about the package layout: each is a file or package users would not get
BUILD_WARNING = re.compile(r"would be ignored|Warning:|SetuptoolsDeprecationWarning|is absent from")


@dataclass
class Installed:
    wheel: Path
    build_output: str
    venv: Path
    env: dict[str, str]
    home: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.bin(argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from a copy of the sources and installed into a new venv."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"  # a copy: an in-tree build would leave build/ and egg-info in the checkout
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=skip)
        else:
            shutil.copy2(path, src / name)
    dist = root / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=BUILD_S,
        check=False,
    )
    output = build.stdout + build.stderr
    assert build.returncode == 0, output[-4000:]
    (wheel,) = dist.glob("aurora_suite-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=INSTALL_S,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    # Nothing of the checkout or of the test's own venv on the way: only the installed package.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "AURORA_"))}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    home = root / "home"
    home.mkdir()
    return Installed(wheel, output, venv, env, home)


def test_the_build_has_no_setuptools_warnings(installed: Installed) -> None:
    warnings = [line.strip() for line in installed.build_output.splitlines() if BUILD_WARNING.search(line)]
    # pip's own notes about its configured indexes are not about the package
    warnings = [w for w in warnings if "Location 'file:" not in w and "byte-compiling is disabled" not in w]
    assert warnings == []


def test_the_wheel_holds_every_data_file_of_the_sources(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {"aurora/py.typed", "aurora/data/registers.json", "aurora/sim/demo.yml"}
    expected |= {f"aurora/web/static/{p.name}" for p in (REPO / "services/web/static").iterdir()}
    data = "aurora_suite-0.1.0.data/data/share/aurora/mosquitto"
    expected |= {f"{data}/mosquitto.conf", f"{data}/acl"}
    assert expected <= names
    # every file of the packages' directories but Python sources and READMEs is data that ships
    for package_dir, package in (("shared/aurora", "aurora"), ("services/sim", "aurora/sim")):
        for path in (REPO / package_dir).rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc", ".md"):
                assert f"{package}/{path.relative_to(REPO / package_dir)}" in names


def test_the_package_is_imported_from_the_venv_not_the_checkout(installed: Installed) -> None:
    done = installed.run("python", "-c", "import aurora, aurora.sim, aurora.web; print(aurora.__file__)")
    assert done.returncode == 0, done.stderr
    where = Path(done.stdout.strip())
    assert where.is_relative_to(installed.venv)
    assert not where.is_relative_to(REPO)


def test_every_entry_point_answers_help(installed: Installed) -> None:
    for name in ENTRY_POINTS:
        done = installed.run(name, "--help")
        assert (name, done.returncode) == (name, 0), done.stderr
        assert "usage:" in (done.stdout + done.stderr).lower()
        assert "Traceback" not in done.stderr
    assert "aurora_monitor" in installed.run("aurora_monitor", "--help").stdout


def test_the_sim_serves_its_built_in_unit_and_fetch_reads_it(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "sim.log"
    argv = [installed.bin("aurora_sim"), "--tcp", f"127.0.0.1:{port}"]  # no dump: the built-in unit
    with running(argv, env=installed.env, log=log) as sim:

        def listening() -> bool:
            assert sim.poll() is None, tail(log)
            return f"listening: tcp://127.0.0.1:{port}/" in log.read_text()

        wait_for(listening, 30.0, "the installed sim's listening line")
        done = installed.run("aurora_fetch", f"tcp://127.0.0.1:{port}/", "745-747")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "Heating Set Point (745)",
        "Cooling Set Point (746)",
        "Ambient Temperature (747)",
    ]
    assert all(re.search(r": -?\d+(\.\d+)?°F$", line) for line in lines), lines


def test_web_aid_tool_serves_its_static_files(installed: Installed, tmp_path: Path) -> None:
    secret = tmp_path / "ui-password"
    secret.write_text("wheel-test-password\n")
    secret.chmod(0o600)
    demo = next(installed.venv.glob("lib/python3*/site-packages/aurora/sim/demo.yml"))
    port = free_port()
    argv = [installed.bin("web_aid_tool"), str(demo), "--port", str(port), "--password-file", str(secret)]
    log = tmp_path / "web.log"
    with running(argv, env=installed.env, log=log) as web:

        def listening() -> bool:
            assert web.poll() is None, tail(log)
            return f"listening: http://127.0.0.1:{port}/" in log.read_text()

        wait_for(listening, 30.0, "the installed web_aid_tool's listening line")
        base = f"http://127.0.0.1:{port}"
        static = REPO / "services/web/static"
        with urllib.request.urlopen(f"{base}/ui/app.css", timeout=10) as reply:
            assert reply.read() == (static / "app.css").read_bytes()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = urllib.parse.urlencode({"password": "wheel-test-password", "next": "/ui/"}).encode()
        login = urllib.request.Request(f"{base}/login", data=form, headers={"Origin": base})
        with opener.open(login, timeout=10) as page:  # 303 to /ui/, followed with the session cookie
            assert page.url == f"{base}/ui/"
            assert page.read() == (static / "index.html").read_bytes()
        with opener.open(f"{base}/ui/app.js", timeout=10) as script:
            assert script.read() == (static / "app.js").read_bytes()


def test_aurora_setup_makes_a_broker_config_that_works(installed: Installed, tmp_path: Path) -> None:
    # no --mosquitto-source: the installed aurora_setup must find the config and ACL it ships
    with Broker.start(tmp_path, setup_command=[installed.bin("aurora_setup")]) as broker:
        bridge = broker.client("bridge")
        home_assistant = broker.client("homeassistant")
        seen = Collector(home_assistant, "homeassistant/#")
        publish(bridge, "homeassistant/sensor/wheel-test/config", b"{}", retain=True)
        assert seen.wait_for("homeassistant/sensor/wheel-test/config", deadline_s=10).payload == b"{}"
        with pytest.raises(MqttRefused):
            broker.client("homeassistant", password="not-its-password")
