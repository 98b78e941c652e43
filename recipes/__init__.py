"""The built-in recipes, shipped as package data (``unpaired_recipes``) so that an installed
``unpaired`` finds ``cyclegan``, ``cyclegan-fashion`` and the rest without the source tree."""
