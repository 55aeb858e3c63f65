"""bench/map_scale.py --local at tiny N: the script runs through boto3 against stepflow local."""

from __future__ import annotations

import pytest

from bench import map_local


def test_the_local_bench_runs_a_distributed_map_from_s3_or_says_it_cannot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = map_local.main([5], ["express"], timeout=120)
    out = capsys.readouterr().out
    assert "Traceback" not in out
    if "NOT SUPPORTED" in out:
        assert code == 2
    else:
        assert code == 0, out
        assert "5 EXPRESS items: SUCCEEDED" in out and "manifest.json: 1 file(s)" in out
