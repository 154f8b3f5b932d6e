"""Evaluation in torch: ranking (CMC, mAP, mINP), memory-bounded re-ranking, the MLR single-shot protocol,
the engines' test step and the results tables."""
