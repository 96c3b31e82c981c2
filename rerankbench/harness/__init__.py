"""Running the benchmark: cells, worker processes, the run loop and its executors, the results store,
sweeps, which feature set a run loads, and what each record says it was measured with."""
