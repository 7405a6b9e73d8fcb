"""medcap: reproductions of medical image captioning and report generation papers.

The work flows one way: reader -> (TFDS builder) -> tf.data pipeline -> model
-> trainer -> evaluator -> report. See README.md for the map of the package.
"""

__version__ = "0.1.0"
