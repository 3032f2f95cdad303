"""`gateway prices`: the table's date, unpriced models flagged at start and in
the list, a refreshed table that survives a restart, single overrides."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.support.gateway_proc import GatewayProcess

CONFIG = """
[gateway]
log_level = info

[provider.local]
kind = openai-compatible
base_url = http://127.0.0.1:9/v1

[routes]
my-llm = local
"""


def test_price_table_lifecycle(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path / "gw", CONFIG).start()
    try:
        assert "model my-llm has no price" in gw.stderr.read_text()
        table = orjson.loads(gw.cli("prices", "list", "--json").stdout)
        assert table["as_of"] == "2026-11-26" and table["source"] == "shipped"
        assert table["unpriced"] == ["my-llm"]
        shown = gw.cli("prices", "list", "--model", "gpt-4o")
        assert "price table of 2026-11-26" in shown.stdout and "my-llm has no price" in shown.stderr
        new = tmp_path / "prices.json"
        new.write_text(
            orjson.dumps(
                {"as_of": "2026-12-01", "models": {"my-llm": [1, 2], "gpt-4o": [2, 8]}}
            ).decode()
        )
        out = orjson.loads(gw.cli("prices", "refresh", "--from", str(new), "--json").stdout)
        assert out["as_of"] == "2026-12-01" and out["models"] == 2
        table = orjson.loads(gw.cli("prices", "list", "--json").stdout)
        assert table["unpriced"] == [] and table["as_of"] == "2026-12-01"
        assert {r["model"] for r in table["data"]} == {"my-llm", "gpt-4o"}
        bad = tmp_path / "bad.json"
        bad.write_text('{"models": {"x": [1]}}')
        refused = gw.cli("prices", "refresh", "--from", str(bad), check=False)
        assert refused.returncode == 1 and "as_of" in refused.stderr
        gw.cli("prices", "set", "my-llm", "--input", "3", "--output", "4")
        gw.stop()
        gw.start()
        table = orjson.loads(gw.cli("prices", "list", "--json").stdout)
        assert table["as_of"] == "2026-12-01"  # kept across the restart
        [row] = [r for r in table["data"] if r["model"] == "my-llm"]
        assert (row["input"], row["source"]) == (3.0, "override")
    finally:
        gw.stop()
