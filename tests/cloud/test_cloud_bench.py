"""The cloud connector benchmark (benchmarks/cloud.py) runs on tiny sizes and reports sane figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import random

import pytest

from benchmarks.cloud import SiteSim, main, percentile

SITES, EVSES, EVENTS, REQUESTS = 3, 4, 12, 5


def test_a_site_says_what_a_real_site_would() -> None:
    sim = SiteSim("s1", 5, random.Random(1))
    start = datetime(2026, 11, 25, 10, tzinfo=UTC)

    chargers = sim.inventory()["chargers"]
    burst = sim.burst(40, start)
    day_start = start + timedelta(minutes=5)
    day = sim.day(3, day_start)

    assert [len(charger["evses"]) for charger in chargers] == [2, 2, 1]
    assert len(burst) == 40
    assert {kind for kind, _, _ in burst} <= {"status", "session_start", "session_update", "session_end"}
    assert not sim.active  # the day first ends what the burst left charging, and ends its own sessions
    starts = [data["session_id"] for kind, data, _ in burst + day if kind == "session_start"]
    ends = [data["session_id"] for kind, data, _ in burst + day if kind == "session_end"]
    assert sorted(starts) == sorted(ends)
    assert len(set(starts)) == len(starts)
    updates = sum(kind == "session_update" for kind, _, _ in day)
    assert 3 * 29 <= updates <= 3 * 240  # one a minute, sessions of 30 min to 4 h
    times = [at for _, _, at in day]
    assert times == sorted(times)
    assert day_start <= times[0]
    assert times[-1] <= day_start + timedelta(hours=24)


def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.99) == 0.0


def test_the_benchmark_runs_every_phase_on_the_real_service(
    socket_enabled: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    argv = ["--sites", str(SITES), "--evses-per-site", str(EVSES), "--events", str(EVENTS)]
    argv += ["--requests", str(REQUESTS), "--day-sessions", "2", "--emsp", "push", "--timeout", "90"]

    assert main([*argv, "--json", str(out)]) == 0

    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert f"{SITES} sites x {EVSES} EVSEs" in text
    assert "events/s" in text
    for name in ("pages", "location", "evse"):
        figures = data[name]
        assert figures["requests"] == REQUESTS
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"] < 5000
    assert data["page_size"] == SITES  # every Location on one page
    assert data["pages"]["mean_bytes"] > data["location"]["mean_bytes"] > data["evse"]["mean_bytes"] > 0
    assert data["ingest_events"] == SITES * EVENTS == sum(data["ingest_kinds"].values())
    assert data["ingest_rate"] > 0
    assert data["resync_sites"] == 1
    assert data["resync_events"] > 2 * 29
    assert 0 < data["resync_welcome_s"] <= data["resync_drain_s"]
    # every event reached the database once, none was refused for its content
    assert data["applied_events"] == SITES + data["ingest_events"] + data["resync_events"]
    assert data["unusable_events"] == 0
    # the eMSP got each Location (PUT) and the status changes (PATCH); nothing was left to push
    assert data["pushes"]["PUT locations"] >= SITES
    assert data["pushes"].get("PATCH locations", 0) > 0
    assert data["push_drain_s"] is not None
