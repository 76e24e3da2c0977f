"""Deployment: the nginx template, and a local cluster of daphne workers behind nginx."""
