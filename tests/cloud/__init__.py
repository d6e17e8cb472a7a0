"""Tests of the cloud connector (no Home Assistant in the code under test)."""
