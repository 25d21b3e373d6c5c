"""SQLite access: one URI builder and opener, one database check, live-use detection."""
