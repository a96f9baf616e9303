"""Storage: everything that speaks SQL, and the versioned migrations."""
