"""Beyond the paper: what intermoe_min's model plugs in (bodies, physics guidance, losses on decoded motion), and files."""
