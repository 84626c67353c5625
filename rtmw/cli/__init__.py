"""Command-line entry points (click). Each only calls the Python API."""
