"""Re-identification from features: distances, CMC/mAP/mINP, re-ranking, thresholds, outputs.

These need only torch, numpy and PIL (no training code), so they also serve saved features;
``attrnet.retrieval.pipeline`` runs them on the features of a trained module (``attrnet-reid``).
The distances come from ``attrnet.distances`` (numpy only), which the torch-free inference API
shares.
"""

from attrnet.distances import (
    METRICS,
    Metric,
    compute_distance,
    iter_distance_chunks,
    paired_distance,
    weights_from_scores,
)
from attrnet.retrieval.outputs import format_reid_line, read_reid_results, write_reid_results
from attrnet.retrieval.rank import (
    PROTOCOLS,
    Protocol,
    RankResult,
    evaluate_rank,
    evaluate_rank_loop,
)
from attrnet.retrieval.rerank import re_ranking
from attrnet.retrieval.threshold import (
    ThresholdChoice,
    best_first,
    choose_threshold,
    cut_ranked_lists,
)
from attrnet.retrieval.visualize import draw_ranked_list, save_png, save_ranked_lists

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "Metric",
    "Protocol",
    "RankResult",
    "ThresholdChoice",
    "best_first",
    "choose_threshold",
    "compute_distance",
    "cut_ranked_lists",
    "draw_ranked_list",
    "evaluate_rank",
    "evaluate_rank_loop",
    "format_reid_line",
    "iter_distance_chunks",
    "paired_distance",
    "re_ranking",
    "read_reid_results",
    "save_png",
    "save_ranked_lists",
    "weights_from_scores",
    "write_reid_results",
]
