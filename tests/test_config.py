"""Bad configuration fails at construction, naming the parameter and the accepted range."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import respool


def make(cls: str, **kwargs: Any) -> Any:
    pool_cls = {"fixed": respool.FixedPool, "elastic": respool.ElasticPool}[cls]
    return pool_cls(kwargs.pop("create", object), **kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs", "error", "names"),
    [
        ("fixed", {"size": 0}, ValueError, "size"),
        ("fixed", {"size": -1}, ValueError, "size"),
        ("fixed", {"size": 2.5}, TypeError, "size"),
        ("fixed", {"size": True}, TypeError, "size"),
        ("fixed", {"timeout": -1}, ValueError, "timeout"),
        ("fixed", {"timeout": float("nan")}, ValueError, "timeout"),
        ("fixed", {"timeout": "5"}, TypeError, "timeout"),
        ("fixed", {"max_waiting": -1}, ValueError, "max_waiting"),
        ("fixed", {"order": "random"}, ValueError, "order"),
        ("fixed", {"create": 42}, TypeError, "create"),
        ("fixed", {"reset": "no"}, TypeError, "reset"),
        ("fixed", {"check": 1}, TypeError, "check"),
        ("fixed", {"destroy": 1}, TypeError, "destroy"),
        ("fixed", {"name": 7}, TypeError, "name"),
        ("fixed", {"discard_on_error": "yes"}, TypeError, "discard_on_error"),
        ("elastic", {"max_idle": -1}, ValueError, "max_idle"),
        ("elastic", {"min_idle": -1}, ValueError, "min_idle"),
        ("elastic", {"max_size": 0}, ValueError, "max_size"),
        ("elastic", {"min_idle": 3, "max_size": 2, "max_idle": 4}, ValueError, "max_size"),
        ("elastic", {"min_idle": 5, "max_idle": 4}, ValueError, "max_idle"),
        ("elastic", {"timeout": -0.5}, ValueError, "timeout"),
        ("elastic", {"order": None}, ValueError, "order"),
    ],
)
def test_bad_configuration_names_the_parameter(
    cls: str, kwargs: dict[str, Any], error: type[Exception], names: str
) -> None:
    """Each bad value raises ValueError/TypeError whose message names the parameter."""
    with pytest.raises(error, match=names):
        make(cls, **kwargs)


def test_bad_configuration_creates_nothing() -> None:
    """A refused configuration never calls create."""
    made: list[object] = []
    with pytest.raises(ValueError, match="order"):
        respool.FixedPool(lambda: made.append(1), size=2, order="sideways")
    assert made == []


@pytest.mark.parametrize("timeout", [-1, float("nan"), "1"])
def test_bad_acquire_timeout_is_refused_even_on_the_fast_path(timeout: Any) -> None:
    """acquire(timeout=...) is validated even when a resource is idle."""
    pool = respool.FixedPool(object, size=1)
    with pytest.raises((ValueError, TypeError), match="timeout"):
        pool.acquire(timeout=timeout)
    assert pool.stats().in_use == 0
    pool.close()


def test_error_hierarchy() -> None:
    """Every error is a PoolError; PoolTimeout is a TimeoutError; StillInUse a LeaseError."""
    assert issubclass(respool.PoolTimeout, respool.PoolError)
    assert issubclass(respool.PoolTimeout, TimeoutError)
    for cls in (respool.PoolClosed, respool.PoolFull, respool.LeaseError):
        assert issubclass(cls, respool.PoolError)
    assert issubclass(respool.StillInUse, respool.LeaseError)


def test_inconsistent_sizes_given_explicitly_name_both_parameters() -> None:
    """ElasticPool(max_idle=4, max_size=2) is refused with both names in the message."""
    with pytest.raises(ValueError, match=r"max_idle \(4\).*max_size \(2\)"):
        respool.ElasticPool(object, max_idle=4, max_size=2)
    with pytest.raises(ValueError, match=r"min_idle \(3\).*max_idle \(2\)"):
        respool.ElasticPool(object, min_idle=3, max_idle=2)


def test_default_max_idle_is_clamped_to_max_size() -> None:
    """A max_idle left at its default never exceeds max_size."""
    pool = respool.ElasticPool(object, max_size=2)
    assert pool.max_idle == 2
    assert pool.stats().size == 0
    pool.close()
    roomy = respool.ElasticPool(object)
    assert roomy.max_idle == 4
    roomy.close()


@pytest.mark.parametrize("cls", [respool.FixedPool, respool.ElasticPool])
def test_help_documents_every_option(cls: type[Any]) -> None:
    """help() on a pool class explains each constructor option, and shows real defaults."""
    doc = cls.__doc__ or ""
    for option in ("timeout", "max_waiting", "discard_on_error", "order", "name"):
        assert f"``{option}``" in doc, option
    signature = str(inspect.signature(cls))
    assert "object at" not in signature
    assert "object at" not in str(inspect.signature(cls.acquire))
    assert "pool's timeout" in str(inspect.signature(cls.acquire))
