"""Running cells: matrices, executors, one cell's training and evaluation, the run store."""
