"""The hop benchmark: its payloads (pure) and one tiny run on a real private Ray (integration)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import hop, hop_report


def test_payloads_have_the_app_sizes() -> None:
    retrieved = hop.retrieval_payload()
    assert (len(retrieved.retrieval), len(retrieved.itemcf)) == (200, 100)
    query = hop.rank_payload()
    assert len(query) == hop.RANKED == 350
    assert len(query.candidates) == hop.RANK_COLUMNS
    assert all(column.shape == (350,) for column in query.candidates.values())
    assert query.movie_ids.dtype == np.int64 and len(set(query.movie_ids.tolist())) == 350


def test_config_deploys_the_builder_by_import_path() -> None:
    config = hop.hop_config(8123)
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8123}
    (app,) = config["applications"]
    module, _, name = app["import_path"].partition(":")
    assert (module, name) == ("benchmarks.hop", "build_app") and callable(hop.build_app)


@pytest.mark.parametrize(
    ("argv", "named"), [(["--calls", "0"], "--calls"), (["--env", "NOVALUE"], "NOVALUE")]
)
def test_main_refuses_bad_arguments(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        hop.main(argv)
    assert named in capsys.readouterr().err


@pytest.mark.integration
def test_tiny_run_writes_every_key(tmp_path: Path) -> None:
    out = tmp_path / "hop.json"
    knob = "RAY_SERVE_QUEUE_LENGTH_CACHE_TIMEOUT_S=10"  # Ray's default, passed through
    argv = ["--calls", "20", "--requests", "20", "--warmup", "5", "--idle", "0.5"]
    assert hop.main([*argv, "--env", knob, "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["setup"]["handle_transport"] == "gRPC"  # the cluster's Serve mode
    assert payload["setup"]["env"] == {"RAY_SERVE_QUEUE_LENGTH_CACHE_TIMEOUT_S": "10"}
    assert set(payload["handle_calls"]) == set(hop.METHODS)
    for row in payload["handle_calls"].values():
        assert row["calls"] == 20 and row["p50_ms"] > 0
        assert row["cpu_ms"] == pytest.approx(row["caller_cpu_ms"] + row["callee_cpu_ms"])
    assert set(payload["serialization"]) == set(hop.METHODS)
    assert payload["serialization"]["rank"]["bytes"] > payload["serialization"]["noop"]["bytes"]
    assert set(payload["http"]) == {"serve", "uvicorn"}
    assert set(payload["http"]["serve"]["cpu_ms_by_process"]) == {"ingress replica", "haproxy"}
    calls = payload["handle_calls"]
    http = payload["http"]
    expected = (
        3 * calls["retrieval"]["cpu_ms"]
        + calls["rank"]["cpu_ms"]
        + http["serve"]["cpu_ms"]
        - http["uvicorn"]["cpu_ms"]
    )
    assert payload["composition"]["cpu_ms"] == pytest.approx(expected)
    flow = payload["flow"]
    assert flow["flows"] == 20 and flow["p50_ms"] > 0
    assert flow["cpu_ms"] == pytest.approx(flow["caller_cpu_ms"] + flow["callees_cpu_ms"])
    http_delta = http["serve"]["cpu_ms"] - http["uvicorn"]["cpu_ms"]
    assert payload["composition"]["flow_cpu_ms"] == pytest.approx(flow["cpu_ms"] + http_delta)
    table = hop_report.markdown_table(payload)
    assert "three at once" in table and table.count("\n| `") == 6  # 3 calls, 3 payloads
