"""Secrets at rest (vault), API tokens, and masking of secrets in everything tidings writes."""
