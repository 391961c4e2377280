"""`crossvit info` against the paper's tables (the figures live in crossvit.models.paper, with their table)."""

from __future__ import annotations

import json

import pytest

from crossvit.cli import main
from crossvit.models.paper import PAPER

# Only the paper's one-decimal rounding separates these from the 1.5 % target (1.84 G printed 1.8, 1.56 G
# printed 1.6); timm's own counter gives 1.85 and 1.57 for the same models.
ROUNDING_ONLY = {"crossvit_9_240", "crossvit_tiny_240"}


@pytest.mark.slow
def test_info_matches_paper_tables(tmp_path, capsys) -> None:
    out = tmp_path / "info.json"
    assert main(["info", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {r["name"]: r for r in json.loads(out.read_text())}
    assert set(rows) == set(PAPER)
    for name, r in rows.items():
        assert name in printed
        p_dev = abs(r["params_m"] / PAPER[name].params_m - 1)
        g_dev = abs(r["gmacs"] / PAPER[name].gflops - 1)
        if PAPER[name].table.startswith(("Table 2", "Table 4")):
            assert p_dev <= 0.02, (name, r["params_m"])
            if name in ROUNDING_ONLY:
                assert round(r["gmacs"], 1) == PAPER[name].gflops, (name, r["gmacs"])
                assert r["within"] == "rounding"
            else:
                assert g_dev <= 0.015, (name, r["gmacs"])
                assert r["within"] == "yes"
        else:  # Tables 6 and 7, Sec. 4.3
            assert p_dev <= 0.05 and g_dev <= 0.05, (name, r["params_m"], r["gmacs"])


def test_info_flops_include_attention(capsys) -> None:
    """SDPA hides attention matmuls from FLOP counters; ours must count them. CrossViT-15 at 408 vs 240 px:
    the linear layers scale with tokens, attention with tokens squared, so the ratio exceeds the token ratio."""
    from crossvit import create_model
    from crossvit.models.flops import count_macs

    small = count_macs(create_model("crossvit_15_240"))
    big = count_macs(create_model("crossvit_15_240", img_size=408))
    token_ratio = (34 * 34 + 24 * 24) / (20 * 20 + 14 * 14)
    assert big / small > token_ratio * 1.05
