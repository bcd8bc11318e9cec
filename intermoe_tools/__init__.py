"""Tools beyond the paper, on intermoe_min and the data: the model's plug-ins, files, devices, readers, data reports."""
