"""Configuration files as data: plain functions from settings to file contents."""
