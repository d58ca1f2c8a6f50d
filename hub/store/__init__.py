"""All SQL of the hub: one module per table family; views and jobs call these functions."""
