"""The pure language of qa-feedback data: no Django, no ORM, importable by training/ml.

vocab (every name once), errors (the application error type), format
(parse, validate, write), spans, text (sentence splitting), rm_files
(reward-model training files).
"""
