"""The synthetic twins: the generative model and the registered test sets it makes features for."""
