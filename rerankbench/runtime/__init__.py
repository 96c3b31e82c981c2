"""What the code runs on: the device (CPU or CUDA) and progress bars. Everything else builds on it."""
