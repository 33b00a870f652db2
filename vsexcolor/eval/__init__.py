"""Quality benchmark: colorize gray versions of colour clips and score them against the originals."""
