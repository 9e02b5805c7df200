"""Independent, deliberately naive reference implementations used to check production code."""
