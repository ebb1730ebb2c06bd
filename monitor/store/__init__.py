"""Results database."""
