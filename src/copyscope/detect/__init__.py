"""Copy criteria, held-out calibration and data-copying statistics."""
