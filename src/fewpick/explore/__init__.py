"""Tomogram exploration (MiLoPYP-class): candidates, self-supervised embeddings,
a 2D map with classes, and a local page to choose particles. The run is :func:`fewpick.explore.run.explore`."""
