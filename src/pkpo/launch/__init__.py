"""Launchers: a framework's own entry point with the PKPO adapter installed in every worker."""
