"""Test helpers shared by the test tiers and the benchmark: real servers, not mocks."""
