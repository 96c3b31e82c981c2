"""Features in: the feature-set record, the protocols' trials, users' feature files, the datasets'
released folders, the ResNet-50 backbone and its checkpoints, and extraction."""
