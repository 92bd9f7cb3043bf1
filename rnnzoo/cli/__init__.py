"""Command-line programs (absl binaries installed as the `rnnzoo-*` console scripts)."""
