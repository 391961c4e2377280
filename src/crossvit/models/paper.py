"""The paper's reported figures, one row per model, with the table each comes from (arXiv 2103.14899v2).

The paper's "FLOPs" are multiply-accumulates (they equal timm's GMACs for the same weights).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    table: str
    top1: float | None
    gflops: float  # GMACs, as the paper counts
    params_m: float


PAPER: dict[str, PaperRow] = {
    # Table 2 (and Table 4 for the 384/480 rows)
    "crossvit_tiny_240": PaperRow("Table 2", 73.4, 1.6, 6.9),
    "crossvit_9_240": PaperRow("Table 2", 73.9, 1.8, 8.6),
    "crossvit_9_dagger_240": PaperRow("Table 2", 77.1, 2.0, 8.8),
    "crossvit_small_240": PaperRow("Table 2", 81.0, 5.6, 26.7),
    "crossvit_15_240": PaperRow("Table 2", 81.5, 5.8, 27.4),
    "crossvit_15_dagger_240": PaperRow("Table 2", 82.3, 6.1, 28.2),
    "crossvit_base_240": PaperRow("Table 2", 82.2, 21.2, 104.7),
    "crossvit_18_240": PaperRow("Table 2", 82.5, 9.0, 43.3),
    "crossvit_18_dagger_240": PaperRow("Table 2", 82.8, 9.5, 44.3),
    "crossvit_15_dagger_408": PaperRow("Table 4", 83.5, 21.4, 28.5),
    "crossvit_18_dagger_408": PaperRow("Table 4", 83.9, 32.4, 44.6),
    "crossvit_18_dagger_516": PaperRow("Table 4", 84.1, 56.6, 44.9),
    # Table 6: fusion schemes on CrossViT-S (cross-attention is crossvit_small_240 itself)
    "crossvit_small_fuse_none_240": PaperRow("Table 6", 80.2, 5.3, 23.7),
    "crossvit_small_fuse_allattn_240": PaperRow("Table 6", 80.0, 7.6, 27.7),
    "crossvit_small_fuse_clstoken_240": PaperRow("Table 6", 80.3, 5.4, 24.2),
    "crossvit_small_fuse_pairwise_240": PaperRow("Table 6", 80.3, 5.5, 24.2),
    # Table 7: architecture knobs on CrossViT-S, rows A-E
    "crossvit_small_t7a_p8_224": PaperRow("Table 7 A", 80.8, 6.7, 26.7),
    "crossvit_small_t7b_sdim384_240": PaperRow("Table 7 B", 80.1, 7.7, 31.4),
    "crossvit_small_t7c_sdepth2_240": PaperRow("Table 7 C", 80.7, 6.3, 28.0),
    "crossvit_small_t7d_cross2_240": PaperRow("Table 7 D", 81.0, 5.6, 28.9),
    "crossvit_small_t7e_k6_240": PaperRow("Table 7 E", 80.9, 6.6, 31.1),
    # Section 4.3, "Importance of CLS tokens" (no FLOPs/params given; CrossViT-S's are the reference)
    "crossvit_small_nocls_240": PaperRow("Sec. 4.3", 80.0, 5.6, 26.7),
}

# Single-branch accuracies of Table 6 (L-branch CLS only, S-branch CLS only).
PAPER_SINGLE_BRANCH: dict[str, tuple[float, float]] = {
    "crossvit_small_fuse_none_240": (80.2, 0.1),
    "crossvit_small_fuse_allattn_240": (79.9, 0.5),
    "crossvit_small_fuse_clstoken_240": (80.6, 7.6),
    "crossvit_small_fuse_pairwise_240": (80.3, 7.3),
    "crossvit_small_240": (68.1, 47.2),
}
