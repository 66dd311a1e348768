"""Quantization: BN folding and channel equalization for INT8, calibration helpers, QAT hooks."""
