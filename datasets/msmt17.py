"""MSMT17 (Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018).

4,101 identities from 15 cameras (12 outdoor, 3 indoor): 1,041 for training (30,248 images),
3,060 for testing with 11,659 queries and 82,161 gallery images.
"""
from rerankbench.synthetic import SplitCounts, TwinModel
from rerankbench.twin import TwinDataset

DATASETS = [TwinDataset(
    name="msmt17", title="MSMT17", reference="Wei et al., CVPR 2018",
    train=SplitCounts(1041, 30248, 15), query=SplitCounts(3060, 11659, 15), gallery=SplitCounts(3060, 82161, 15),
    # noise and view_share: fitted by `python -m rerankbench calibrate --fit` (docs/calibration.md)
    model=TwinModel(noise=0.9955, view_share=0.8422))]
