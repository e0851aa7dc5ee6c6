"""Preview records: who previewed which person's claim, and when (previews store nothing else)."""
