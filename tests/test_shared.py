"""The fleet's shared store (SPEC section 5, ``CLAUDEMETER_REDIS_URL``) against a real
``redis-server`` from Debian's packages on a free loopback port, with a password (AUTH
through the URL). Each "host" is a state dir of its own; all share the one Redis and
the fake upstream, as hosts on one account share api.anthropic.com."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import fixture_bodies, fixture_body, reading, wait_for
from tests.redislab import (
    PASSWORD,
    RedisServer,
    host_env,
    meter,
    rows_of,
    serve_hosts,
    start_redis,
)
from tests.upstream import FakeUpstream

USAGE = "/api/oauth/usage"


def test_one_request_for_the_whole_fleet_and_every_host_reads_it(
    tmp_path: Path, claude_dir: Path, upstream: FakeUpstream, fleet_redis: RedisServer
) -> None:
    hosts = [host_env(tmp_path, f"host{k}", fleet_redis.url) for k in range(3)]
    first = meter(hosts[0], "refresh")
    assert first.returncode == 0, first.stderr
    assert len(upstream.hits(USAGE)) == 1
    for env in hosts[1:]:
        done = meter(env, "refresh")
        assert done.returncode == 0, done.stderr
        assert "another host of the fleet asks this interval" in done.stdout + done.stderr
    assert len(upstream.hits(USAGE)) == 1  # one request for three hosts
    expected = fixture_body("oauth_usage_basic.json")
    for env in hosts:
        rows = rows_of(env)
        assert [r["account_email"] for r in rows] == ["ada@example.com"]
        assert rows[0]["usage"]["five_hour"] == expected["five_hour"]

    # What Redis holds: readings under the prefix, each key with a TTL, and no secret.
    client = fleet_redis.client()
    keys = client.keys("*")  # str: the client decodes replies
    assert keys and all(isinstance(key, str) and key.startswith("claudemeter:v1:") for key in keys)
    assert all(client.pttl(key) > 0 for key in keys)
    blobs = {key: blob for key in keys if isinstance(blob := client.dump(key), bytes)}
    assert len(blobs) == len(keys)  # DUMP answers for every key
    dump = json.dumps({key: blob.hex() for key, blob in blobs.items()}) + json.dumps(
        {key: client.hgetall(key) for key in keys if client.type(key) == "hash"}
    )
    credentials = (claude_dir / ".credentials.json").read_text()
    oauth = json.loads(credentials)["claudeAiOauth"]
    for secret in (PASSWORD, oauth["accessToken"], oauth["refreshToken"]):
        assert secret not in dump


def test_without_redis_every_reader_goes_on_says_shared_and_loses_nothing(
    tmp_path: Path, claude_dir: Path, upstream: FakeUpstream
) -> None:
    server = start_redis(tmp_path / "r1")
    port = server.port
    laptop, box = (host_env(tmp_path, name, server.url) for name in ("laptop", "box"))
    try:
        assert meter(laptop, "refresh").returncode == 0
        server.stop()  # Redis goes away

        # The laptop's browser posts meanwhile: stored in its own file, as ever.
        posted = fixture_bodies("snapshots_two_browsers_two_accounts.json")
        other = next(s for s in posted if s["org_uuid"].endswith("c002"))
        other["fetched_at"] = rows_of(laptop)[0]["fetched_at"]
        ingest = meter(laptop, "ingest", "-", stdin=json.dumps(other))
        assert ingest.returncode == 0, ingest.stderr
        refreshed = meter(laptop, "refresh")
        assert "shared store 127.0.0.1" in refreshed.stdout + refreshed.stderr
        assert PASSWORD not in refreshed.stdout + refreshed.stderr
        segment = meter(laptop, "status")
        assert segment.returncode == 0
        assert "shared?" in segment.stdout and "%" in segment.stdout  # numbers, and the doubt
        assert len(rows_of(laptop)) == 2

        # Redis returns empty (no persistence): the laptop's next sync pushes what it
        # wrote meanwhile, and the box reads it.
        server = start_redis(tmp_path / "r2", port)
        assert meter(laptop, "refresh").returncode == 0
        assert "shared?" not in meter(laptop, "status").stdout
        assert meter(box, "refresh").returncode == 0
        assert sorted(r["org_uuid"] for r in rows_of(box)) == sorted(
            r["org_uuid"] for r in rows_of(laptop)
        )
    finally:
        server.stop()


def test_a_browser_reading_on_one_host_reaches_another_hosts_bridge_by_itself(
    tmp_path: Path, fleet_redis: RedisServer
) -> None:
    """No command by hand: each host's ``serve`` syncs the fleet on its own."""
    (_laptop, box), bridges = serve_hosts(tmp_path, fleet_redis.url)
    try:
        assert bridges[0].post([reading(77.0)]).status == 200

        def on_the_box() -> list[dict[str, Any]]:
            return [r for r in rows_of(box) if r["browser"] == "Chrome"]

        rows = wait_for(on_the_box, seconds=40, what="the laptop's browser reading on the box")
        assert rows[0]["usage"]["five_hour"]["utilization"] == 77
    finally:
        for bridge in bridges:
            bridge.stop()


def test_rediss_verifies_the_server_and_the_fleet_works_over_it(
    tmp_path: Path, claude_dir: Path, upstream: FakeUpstream
) -> None:
    server = start_redis(tmp_path / "tls", tls=True)
    try:
        hosts = [host_env(tmp_path, f"host{k}", server.url) for k in range(2)]
        for env in hosts:
            assert meter(env, "refresh").returncode == 0
        assert len(upstream.hits(USAGE)) == 1
        assert [r["account_email"] for r in rows_of(hosts[1])] == ["ada@example.com"]
        # Without the CA the server's certificate is not trusted: no connection.
        unverified = server.url.split("?", 1)[0]
        doctor = meter(host_env(tmp_path, "host2", unverified), "doctor").stdout
        line = next(line for line in doctor.splitlines() if " shared " in line)
        assert line.startswith("warn") and PASSWORD not in doctor
    finally:
        server.stop()


def test_doctor_names_the_shared_store_without_its_password(
    tmp_path: Path, fleet_redis: RedisServer
) -> None:
    env = host_env(tmp_path, "host", fleet_redis.url)
    line = next(line for line in meter(env, "doctor").stdout.splitlines() if " shared " in line)
    assert line.startswith("ok") and f"127.0.0.1:{fleet_redis.port}" in line
    wrong = host_env(tmp_path, "host", f"redis://:wrong-password@127.0.0.1:{fleet_redis.port}/0")
    output = meter(wrong, "doctor").stdout
    line = next(line for line in output.splitlines() if " shared " in line)
    assert line.startswith("warn") and "wrong-password" not in output


def test_the_redis_client_is_never_imported_without_the_variable(claude_dir: Path) -> None:
    code = (
        "import sys\n"
        "from claudemeter import cli, model, refresh, status, store\n"
        "refresh.refresh()\n"
        "status.job_output(store.Store().read(), model.utcnow())\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
