"""Shared test fixtures."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture
def one_blas_thread():
    """One BLAS thread for the test: the CI box is small and shared, and one thread is far faster
    than oversubscription. Modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``."""
    with threadpool_limits(1):
        yield
