"""The validation re-ID metric (the study's protocol as a torchmetrics metric) against a plain
per-query computation: rows given out of order and one row twice give the figures of the
distinct rows in dataset order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attrnet.data.splits import study_reid_protocol
from attrnet.retrieval.study_metric import StudyReidMetric
from tests.test_retrieval_rank import reference_scores


def test_matches_plain_computation_on_distinct_rows_in_index_order() -> None:
    generator = torch.Generator().manual_seed(3)
    identities = torch.arange(24) // 4  # 6 identities x 4 images
    features = torch.randn(24, 6, generator=generator) + identities[:, None] * 0.4
    indices = torch.arange(24)
    order = torch.randperm(24, generator=generator)
    metric = StudyReidMetric()
    metric.update(features[order[:15]], identities[order[:15]], indices[order[:15]])
    repeat = order[15:].tolist() + [order[0].item()]  # a padding sampler's repeat
    metric.update(features[repeat], identities[repeat], indices[repeat])
    result = metric.compute()

    ids = identities.numpy()
    query, gallery = study_reid_protocol(ids)
    distances = np.sqrt(((features[query, None] - features[None, gallery]) ** 2).sum(-1).numpy())
    cameras = np.zeros(24, dtype=np.int64)
    cmc, m_ap, *_ = reference_scores(
        distances, ids[query], ids[gallery], cameras[query], cameras[gallery], 5, "study"
    )
    assert float(result["reid_rank1"]) == pytest.approx(cmc[0], abs=1e-6)
    assert float(result["reid_mAP"]) == pytest.approx(m_ap, abs=1e-6)
    assert 0.0 < m_ap < 1.0  # a case where the ranking matters


def test_no_identity_with_two_images_gives_no_figures() -> None:
    metric = StudyReidMetric()
    metric.update(torch.randn(3, 4), torch.arange(3), torch.arange(3))
    assert metric.compute() == {}
