"""Parts of the scale benchmark (`python -m benchmarks.scale`): data, methods, report."""
