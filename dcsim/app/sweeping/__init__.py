"""`dcsim sweep`: grids of scenario fields, one run per point, rows in a Parquet file."""
