"""ACP, the Attention-based Correlation Predictor (shared/paper/, Sec. III-B): model, model figures, training."""
