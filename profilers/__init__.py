"""Measure a model on one backend; returns statistics with raw samples. Knows nothing about NAS."""
