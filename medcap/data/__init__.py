"""Datasets: readers of the real on-disk formats, synthetic writers, tf.data pipeline."""
