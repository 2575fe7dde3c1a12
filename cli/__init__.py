"""The `bulwark` command line."""
