"""Fitting the twins to the paper, and the table that checks them (docs/calibration.md)."""
