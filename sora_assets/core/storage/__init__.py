"""Storage: the home folder, its work areas, crash-safe writes and the object-store protocol."""
