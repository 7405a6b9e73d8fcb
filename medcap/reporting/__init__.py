"""Paper 003's path from a findings classifier to a report.

    description.py     the classifier's outputs for one study as a typed, graded record
    sentence_bank.py   sentences learned from the train reports with medcap's labeler
    writers.py         writers by name (`template`), one interface
"""
