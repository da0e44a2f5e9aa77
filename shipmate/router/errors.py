"""The one error the router's client side raises, for the rack to report."""

from __future__ import annotations

from shipmate.domain.errors import ShipmateError


class RouterError(ShipmateError):
    """The router refused a change, could not be reached, or did not start."""
