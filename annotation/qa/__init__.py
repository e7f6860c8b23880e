"""The pure language of qa-feedback data: no Django, no ORM, importable by training/ml.

vocab (every name once), errors (the application error type), format
(parse, validate, write), spans (span rules), text (sentence splitting),
rm_files (reward-model training files), preferences (the six pairwise
answers) and drafts (edits of work in progress on the annotation pages).
"""
