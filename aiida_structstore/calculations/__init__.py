"""AiiDA calculations of aiida-structstore (process functions in :mod:`.functions`)."""
