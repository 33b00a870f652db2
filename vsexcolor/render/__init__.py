"""A render to a file: a recipe's clip read, cut into parts and encoded, here or on a Ray farm."""
