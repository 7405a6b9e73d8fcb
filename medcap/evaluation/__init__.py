"""Evaluation: text metrics, clinical efficacy, classification, statistics, baselines, reports."""
