"""Run records: on disk (store.py: files, locks, atomic writes) and what they mean (meaning.py)."""
