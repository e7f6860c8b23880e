"""The annotation app's pages, one module per area: datasets, campaigns, annotate, rm_files."""
