"""Database fixtures: SQLite files, and a real PostgreSQL server when one can be started."""
