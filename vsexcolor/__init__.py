"""vsexcolor."""
