"""Training a grid point: the training core, the Lightning wiring, the job, MLflow tracking."""
