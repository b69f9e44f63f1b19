"""Evaluation: the papers' metrics, the sync expert's scores, baselines and the report."""
