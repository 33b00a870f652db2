"""Checkpoints of both model families (DEVC, DDColor): found, checked, downloaded and loaded."""
