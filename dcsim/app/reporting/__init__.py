"""`dcsim report`: headline figures of runs, their history in DuckDB, and one HTML page."""
