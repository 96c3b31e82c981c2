"""VehicleID (Liu et al., "Deep Relative Distance Learning: Tell the Difference Between
Similar Vehicles", CVPR 2016).

26,267 vehicles without camera ids: 13,164 for training (113,346 images) and test lists of
800 / 1,600 / 2,400 vehicles. Protocol: in each of 10 seeded draws one image per vehicle
forms the gallery and every other image is a query; CMC@1 and CMC@5 are averaged over the
draws. k = 4 for the neighbourhood methods (paper, Table IV: N / C = 1 here).
"""
from rerankbench.synthetic import SplitCounts, TwinModel
from rerankbench.twin import TwinDataset

TRAIN = SplitCounts(13164, 113346)


def _test_set(size: str, ids: int, queries: int, noise: float, view_share: float) -> TwinDataset:
    return TwinDataset(
        name=f"vehicleid_{size}", title=f"VehicleID ({size})", reference="Liu et al., CVPR 2016",
        train=TRAIN, query=SplitCounts(ids, queries), gallery=SplitCounts(ids, ids), protocol="vehicleid",
        k_override=4, model=TwinModel(noise=noise, view_share=view_share, views=2, camera_shift=0.0),
        train_model=TRAIN_MODEL)


# noise and view_share: fitted by `python -m rerankbench calibrate --fit` (docs/calibration.md);
# the three test sets share one train split, made from the large test set's model as it is: the
# paper's backbone underfits this dataset's large training set (Table VI), so it is not easier.
TRAIN_MODEL = TwinModel(noise=1.6613, view_share=0.6375, views=2, camera_shift=0.0)
DATASETS = [_test_set("small", 800, 5693, noise=1.8797, view_share=0.425),
            _test_set("medium", 1600, 11777, noise=1.6165, view_share=0.6375),
            _test_set("large", 2400, 17377, noise=1.6613, view_share=0.6375)]
