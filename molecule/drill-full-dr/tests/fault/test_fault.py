"""drill-full-dr, the fault is visible: the app host answers nothing and has no uploads,
the database host has no demo_app database."""

from __future__ import annotations

from conftest import health


def test_app_host_lost(drill):
    for name in drill.app:
        host = drill.host(name)
        assert health(host)[0] != 200, name
        assert not host.file("/opt/demo-app/shared/uploads").exists, name


def test_database_lost(drill):
    # A replaced host has the rootfs' own empty cluster at most, never the app's database.
    query = "select 1 from pg_database where datname = 'demo_app'"
    result = drill.host(drill.db).run(f'cd / && runuser -u postgres -- psql -Atc "{query}"')
    assert result.rc != 0 or result.stdout.strip() == "", "the database host still has demo_app"
