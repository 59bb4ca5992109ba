"""Options from the environment are checked like options on the command line (exit 2, no traceback)."""

from __future__ import annotations

import pytest
from aurora.fetch.cli import build_parser as fetch_parser
from aurora.sim.cli import build_parser as sim_parser

from tests.support.environment import clear_tool_environment


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tool_environment(monkeypatch)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AURORA_SIM_BAUD", "abc"), ("AURORA_SIM_DROP", "2"), ("AURORA_SIM_REFUSE_WF_CODES", "maybe")],
)
def test_a_bad_sim_variable_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        sim_parser().parse_args([])
    assert 2 == exited.value.code


def test_sim_variables_set_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_SIM_BAUD", "9600")
    monkeypatch.setenv("AURORA_SIM_DROP", "0.25")
    monkeypatch.setenv("AURORA_SIM_REFUSE_WF_CODES", "true")
    args = sim_parser().parse_args([])
    assert (9600, 0.25, True) == (args.baud, args.drop, args.refuse_wf_codes)


def test_fetch_timeout_from_the_environment_is_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_FETCH_TIMEOUT", "1.5")
    assert 1.5 == fetch_parser().parse_args(["x", "1"]).timeout
    monkeypatch.setenv("AURORA_FETCH_TIMEOUT", "soon")
    with pytest.raises(SystemExit) as exited:
        fetch_parser().parse_args(["x", "1"])
    assert 2 == exited.value.code


def test_sim_power_entries_in_the_environment_are_separated_by_semicolons(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AURORA_SIM_POWER", "compressor=3000,blower=200; 60@compressor=6000")
    steps = sim_parser().parse_args([]).power
    assert [(0.0, {"compressor": 3000, "blower": 200}), (60.0, {"compressor": 6000})] == [
        (step.after_s, dict(step.readings)) for step in steps
    ]
    monkeypatch.setenv("AURORA_SIM_POWER", "compressor=3000;kettle=5")
    with pytest.raises(SystemExit) as exited:
        sim_parser().parse_args([])
    assert 2 == exited.value.code
    assert capsys.readouterr().err.startswith(
        "aurora_sim: AURORA_SIM_POWER='kettle=5': 'kettle=5': use NAME=VALUE"
    )
