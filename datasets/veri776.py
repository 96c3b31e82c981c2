"""VeRi-776 (Liu et al., "Large-scale vehicle re-identification in urban surveillance
videos", ICME 2016).

776 vehicles from 20 cameras: 576 for training (37,746 images), 200 for testing with 1,678
queries and 11,579 gallery images.
"""
from rerankbench.synthetic import SplitCounts, TwinModel
from rerankbench.twin import TwinDataset

DATASETS = [TwinDataset(
    name="veri776", title="VeRi-776", reference="Liu et al., ICME 2016",
    train=SplitCounts(576, 37746, 20), query=SplitCounts(200, 1678, 19), gallery=SplitCounts(200, 11579, 19),
    # noise and view_share: fitted by `python -m rerankbench calibrate --fit` (docs/calibration.md)
    model=TwinModel(noise=0.8871, view_share=0.7504))]
