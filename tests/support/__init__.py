"""Real services that tests start on 127.0.0.1 or the test hosts' bridge (never elsewhere)."""
