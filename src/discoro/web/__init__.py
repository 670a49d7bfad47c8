"""The status web page."""
