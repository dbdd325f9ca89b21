"""kernel/mm."""
