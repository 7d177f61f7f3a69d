"""Logger factories that need more than a config entry (see configs/logger/)."""
