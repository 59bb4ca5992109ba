"""Fixtures every test directory may use, the logs of started processes in failure reports, the
guard against unexpected ERROR logs, and what keeps a test run from writing into the checkout."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from pathlib import Path

# Bytecode goes to a cache outside the checkout, for this process's later imports and for every
# process a test starts (they inherit the environment): a run leaves no __pycache__ in the tree,
# and a started tool still imports from cached bytecode, as fast as an installed one.
# (`make test` sets it before pytest starts, so not even this file's own bytecode lands here.)
if not os.environ.get("PYTHONPYCACHEPREFIX"):
    _cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aurora-suite" / "pycache"
    os.environ["PYTHONPYCACHEPREFIX"] = str(_cache)
sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]

from collections.abc import Generator, Iterator  # noqa: E402

import pytest  # noqa: E402

from tests.support import Broker  # noqa: E402
from tests.support.logguard import ErrorLogGuard, failure_message  # noqa: E402
from tests.support.processes import logs_for_report, start_of_test  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto with the project's TLS listener, password file and ACL, on a free port."""
    with Broker.start(tmp_path) as running_broker:
        yield running_broker


REPO = Path(__file__).resolve().parents[1]
_AUDITED = ("open", "os.listdir", "os.scandir")
# Computed once, before the hook is installed: tempfile.gettempdir() opens files the first time
# and holds a lock meanwhile, so calling it from inside the hook would deadlock.
_ALLOWED = tuple(Path(p) for p in (sys.prefix, sys.base_prefix, tempfile.gettempdir(), Path.home()))
_in_hook = threading.local()


def reads_outside_checkout(path: object, repo: Path = REPO) -> bool:
    """Whether a test opening ``path`` reads a neighbour of the checkout (the ``shared/`` folder
    beside it, another checkout): a clone elsewhere would not have it. System, interpreter, home and temporary
    directories are fine; when the checkout sits right in one of those, nothing is checked."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False  # a file descriptor
    parent = repo.parent
    if parent == Path(parent.anchor) or any(
        a.is_relative_to(parent) and not a.is_relative_to(repo) for a in _ALLOWED
    ):
        return False
    target = Path(os.path.abspath(os.fsdecode(path)))
    return target.is_relative_to(parent) and not target.is_relative_to(repo)


def _refuse_reads_outside_checkout(event: str, args: tuple[object, ...]) -> None:
    if event not in _AUDITED or not args or getattr(_in_hook, "active", False):
        return
    _in_hook.active = True  # nothing the check itself does is checked again
    try:
        outside = reads_outside_checkout(args[0])
    finally:
        _in_hook.active = False
    if outside:
        raise PermissionError(f"tests read only inside the checkout, not {os.fsdecode(args[0])!r}")  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    sys.addaudithook(_refuse_reads_outside_checkout)


@pytest.fixture(autouse=True)
def error_log_guard(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ErrorLogGuard]:
    """Fails the test if the code it ran in this process logged at ERROR or above, unless the test
    is marked ``error_log_expected`` or checks the records itself through ``error_logs``."""
    guard = ErrorLogGuard()
    guard.install(monkeypatch)
    yield guard
    records = guard.records
    expected = request.node.get_closest_marker("error_log_expected") or "error_logs" in request.fixturenames
    if records and not expected:
        pytest.fail(failure_message(records), pytrace=False)


@pytest.fixture
def error_logs(error_log_guard: ErrorLogGuard) -> ErrorLogGuard:
    """The ERROR records this test logs, for a test that expects some and checks them itself."""
    return error_log_guard


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    start_of_test()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for title, text in logs_for_report():
            report.sections.append((title, text))


# `make test` runs modules side by side (xdist, --dist loadfile --no-loadscope-reorder), handing
# them out in collection order: a long module collected late can start once the rest is nearly done
# and keep the whole pass waiting for it alone. These, the longest (a minute or more each on 2 busy
# cores), go first, longest first, but for the two whose Home Assistant tests wait for .venv-ha
# (make test builds it meanwhile: tests/integration/conftest.py); every other module keeps its place.
LONG_MODULES = (
    "integration/test_bridge.py",
    "integration/test_bridge_outages.py",
    "integration/test_ser2net.py",
    "integration/test_clone.py",
    "integration/test_vports.py",
    "integration/test_writes.py",
    "integration/test_wheel.py",
    "integration/test_passthrough.py",
    "integration/test_energy_hass.py",
    "browser/test_home_dashboard.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        where = f"{item.path.parent.name}/{item.path.name}"
        return LONG_MODULES.index(where) if where in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)  # stable: the modules' own order, and each module's tests', is kept


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In a run of `timing` tests alone (`make test`'s passes after the parallel one), a test
    module that marks none is not imported: importing all of them would cost ~10 s a pass."""
    markexpr = str(config.getoption("markexpr", "") or "")
    if not re.fullmatch(r"timing( and (not )?wallclock)?", markexpr.strip()):
        return None
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return "mark.timing" not in collection_path.read_text(encoding="utf-8") or None
