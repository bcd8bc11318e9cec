"""Tools built on intermoe_min and the data packages: readers of other datasets and reports on data."""
