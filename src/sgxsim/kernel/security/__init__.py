"""kernel/security."""
