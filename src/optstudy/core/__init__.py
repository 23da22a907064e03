"""One-line errors and exit codes, flag types, and where a run ran (provenance)."""
