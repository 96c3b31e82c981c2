"""Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

1,501 identities from 6 cameras: 751 for training (12,936 images), 750 for testing with
3,368 queries and a gallery of 15,913 images that keeps the 2,798 distractors (identity 0);
junk images (identity -1) are dropped, as in fast-reid and torchreid.

Released layout: Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}/ with
names like 0002_c1s1_000451_03.jpg: identity 0002 (-1 junk, 0000 distractor), camera 1,
sequence 1, frame 000451, box 03.
"""
import re
from pathlib import Path

from rerankbench.features.released import PERSON_SIZE, ReleasedLayout, ReleasedSplits, scanned_splits, subfolder
from rerankbench.twins.synthetic import SplitCounts, TwinModel
from rerankbench.twins.twin import TwinDataset

NAME = re.compile(r"(-1|\d+)_c(\d)s\d+_\d+_\d+\.jpg")


def read_released(data_root: Path) -> ReleasedSplits:
    root = subfolder(data_root, "Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15")
    return scanned_splits(root, NAME, "bounding_box_train", "query", "bounding_box_test")


MARKET1501 = TwinDataset(
    name="market1501", title="Market-1501", reference="Zheng et al., ICCV 2015",
    train=SplitCounts(751, 12936, 6), query=SplitCounts(750, 3368, 6), gallery=SplitCounts(750, 15913, 6),
    distractors=2798, released=ReleasedLayout(read_released, PERSON_SIZE),
    # noise and view_share: fitted by `python -m rerankbench calibrate --fit` (docs/calibration.md)
    model=TwinModel(noise=0.605, view_share=0.777))

# Market-1501 + 500k (Zheng et al., ICCV 2015; k-reciprocal re-ranking's large-gallery test, Zhong et
# al., CVPR 2017, Table 4): the Market-1501 twin, its queries and gallery as they are, and 500,000
# distractors (identity 0) after its gallery; k1 = N/C stays Market-1501's (no real data: twin only).
MARKET1501_500K = TwinDataset(
    name="market1501_500k", title="Market-1501+500k", reference="Zheng et al., ICCV 2015 (500k distractors)",
    train=MARKET1501.train, query=MARKET1501.query, gallery=MARKET1501.gallery, distractors=MARKET1501.distractors,
    model=MARKET1501.model, extra_distractors=500_000, twin_of=MARKET1501, in_all=False)

DATASETS = [MARKET1501, MARKET1501_500K]
