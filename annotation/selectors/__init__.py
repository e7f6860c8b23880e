"""Reads. One module per area; import the public functions from here."""
