"""``scheduler-extender forecast`` on saved query_range answers."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scheduler_extender import cli

START = 1_700_000_040.0


def query_range_body(rates: dict[str, np.ndarray], step: float = 60.0) -> dict[str, Any]:
    result = [
        {
            "metric": {"agent": agent, "job": "traffic"},
            "values": [
                [START + i * step, repr(float(v))] for i, v in enumerate(values) if np.isfinite(v)
            ],
        }
        for agent, values in rates.items()
    ]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["forecast", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_forecast_prints_each_agent_with_steps_model_and_backtest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(8)
    t = np.arange(3 * 288)  # three days at 5-minute steps
    daily = 1.0 + 0.5 * np.sin(2 * np.pi * t / 288)
    rates = {
        "hot": 40.0 * daily + rng.normal(0, 1.0, t.size),
        "cold": 0.5 * daily + rng.normal(0, 0.05, t.size),
        "gone": np.concatenate([np.ones(t.size - 40), np.full(40, np.nan)]),
    }
    path = tmp_path / "history.json"
    path.write_text(json.dumps(query_range_body(rates, step=300.0)))

    status, out, err = run(capsys, "--input", str(path), "--horizon", "15m", "--quantile", "0.8")
    assert status == 0, err
    report = json.loads(out)
    assert report["input"] == {
        "series": 3,
        "agents": 3,
        "start": START,
        "end": START + (t.size - 1) * 300.0,
        "step_seconds": 300.0,
        "points": t.size,
    }
    assert (report["horizon_steps"], report["quantile"]) == (3, 0.8)
    hot, cold, gone = report["agents"]  # by forecast peak, highest first
    assert [hot["agent"], cold["agent"], gone["agent"]] == ["hot", "cold", "gone"]
    assert hot["status"] == "ok"
    assert hot["model"] in {"holt_winters", "seasonal_naive", "seasonal_median", "ewma", "holt"}
    assert [s["timestamp"] for s in hot["forecast"]] == [
        report["input"]["end"] + h * 300.0 for h in (1, 2, 3)
    ]
    truth = 40.0 * (1.0 + 0.5 * np.sin(2 * np.pi * np.arange(t.size, t.size + 3) / 288))
    for step, expected in zip(hot["forecast"], truth, strict=True):
        assert step["point"] == pytest.approx(expected, abs=4.0)
        assert step["upper"] >= step["point"]
    assert set(hot["backtest"]) == {"mase", "pinball_loss", "coverage", "mae", "scale", "origins"}
    assert gone["status"] == "gone"
    assert gone["backtest"] is None
    assert gone["peak"] == 0.0


def test_sixty_days_of_half_hourly_history_are_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(60 * 48)  # 60 days at 30-minute steps
    rates = {"daily": 30.0 + 20.0 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 1.0, t.size)}
    path = tmp_path / "history.json"
    path.write_text(json.dumps(query_range_body(rates, step=1800.0)))

    status, out, err = run(capsys, "--input", str(path), "--horizon", "2h", "--season", "1d")
    assert status == 0, err
    [daily] = json.loads(out)["agents"]
    assert daily["status"] == "ok"
    assert daily["model"] in {"holt_winters", "seasonal_naive", "seasonal_median"}
    assert daily["backtest"]["mase"] < 1.0
    truth = 30.0 + 20.0 * np.sin(2 * np.pi * np.arange(t.size, t.size + 4) / 48)
    assert [s["point"] for s in daily["forecast"]] == pytest.approx(list(truth), abs=4.0)


def test_a_list_of_seasons_names_the_one_each_agent_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hours = np.arange(5 * 168 - 51)
    weekday = (hours // 24) % 7 < 5
    cycle = 50 + 30 * np.sin(2 * np.pi * hours / 24)
    rates = {"weekly": np.where(weekday, 1.0, 0.3) * cycle, "steady": np.full(hours.size, 7.0)}
    path = tmp_path / "history.json"
    path.write_text(json.dumps(query_range_body(rates, step=3600.0)))

    status, out, err = run(capsys, "--input", str(path), "--horizon", "6h", "--season", "1d,7d")
    assert status == 0, err
    report = json.loads(out)
    assert (report["season_seconds"], report["seasons_seconds"]) == (86400.0, [86400.0, 604800.0])
    agents = {a["agent"]: a for a in report["agents"]}
    assert agents["weekly"]["season_seconds"] == 604800.0
    assert agents["steady"]["model"] in {"naive", "median", "ewma"}
    assert agents["steady"]["season_seconds"] in (None, 86400.0)


def test_stdin_and_an_explicit_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = query_range_body({"a": np.array([1.0])})
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(body)))
    status, out, err = run(capsys, "--input", "-", "--horizon", "2m", "--step", "1m")
    assert status == 0, err
    [agent] = json.loads(out)["agents"]
    assert agent["status"] == "new"
    assert [s["point"] for s in agent["forecast"]] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        ('{"status": "error", "error": "boom"}', "boom"),
        ('{"status": "success", "data": {"resultType": "vector", "result": []}}', "matrix"),
        (json.dumps(query_range_body({"a": np.array([1.0])})), "pass --step"),
    ],
)
def test_unreadable_or_corrupt_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "in.json"
    if content is not None:
        path.write_text(content)
    status, out, err = run(capsys, "--input", str(path), "--horizon", "15m")
    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--horizon", "soon"), ("--quantile", "1.5"), ("--season", "0s"), ("--season", "1d,1d")],
)
def test_bad_flags_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    args = {"--input": str(tmp_path / "x.json"), "--horizon": "15m", flag: value}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["forecast", *[part for pair in args.items() for part in pair]])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err
