"""Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

1,501 identities from 6 cameras: 751 for training (12,936 images), 750 for testing with
3,368 queries and a gallery of 15,913 images that keeps the 2,798 distractors (identity 0);
junk images (identity -1) are dropped, as in fast-reid and torchreid.
"""
from rerankbench.synthetic import SplitCounts, TwinModel
from rerankbench.twin import TwinDataset

DATASETS = [TwinDataset(
    name="market1501", title="Market-1501", reference="Zheng et al., ICCV 2015",
    train=SplitCounts(751, 12936, 6), query=SplitCounts(750, 3368, 6), gallery=SplitCounts(750, 15913, 6),
    distractors=2798,
    # noise and view_share: fitted by `python -m rerankbench calibrate --fit` (docs/calibration.md)
    model=TwinModel(noise=0.605, view_share=0.777))]
