"""Mining as a workflow: preparation of mining data, mining jobs that make a version of the top-k."""
